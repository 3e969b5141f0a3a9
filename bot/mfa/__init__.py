"""The second factor on Approve (issue 18): TOTP codes (`totp`), their secrets sealed at rest
(`sealing`), and the step-up itself: enrolment, a code checked with replay refusal and lock-out
(`stepup`). Its storage is in bot/store/mfa_enrolling.py and bot/store/mfa_verifying.py."""
