"""Settings, read from the environment (and a `.env` file) once, validated up front.

A bad setting must stop the bot before it touches Slack or sFOX, with one line that names the
setting, so every value is parsed here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from bot.policy.policy_file import PolicyFileError, PolicySpec, legacy_spec, load_policy_file
from bot.settings_reader import ConfigError, EnvReader
from bot.slack.ids import SLACK_CHANNEL_ID, SLACK_GROUP_ID, SLACK_USER_ID
from bot.webhooks.destinations import AllowedHosts

AUDIT_KEY_MIN_LENGTH = 16
MFA_KEY_MIN_LENGTH = 32
INTAKE_SECRET_MIN_LENGTH = 32
AUDIT_WEBHOOK_SECRET_MIN_LENGTH = 32
STEP_UPS = ("none", "totp")


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = "https://slack.com/api/"
    sfox_api_key: str | None = field(default=None, repr=False)
    sfox_api_url: str = "https://api.sfox.com"
    approvers: frozenset[str] = frozenset()
    approver_group: str | None = None
    allowed_channels: frozenset[str] = frozenset()
    # Where a request that was not typed in a channel gets its card (issue 20: the Workflow Builder
    # step without a channel input, the intake API).
    default_channel: str | None = None
    required_approvals: int = 1
    # SFOX_POLICY_FILE (issue 18), read and checked at load: who asks, the stages, the step-up.
    # None: SFOX_APPROVERS, SFOX_APPROVER_GROUP and SFOX_REQUIRED_APPROVALS are the policy.
    policy_file: str | None = None
    policy: PolicySpec | None = None
    request_ttl_seconds: int = 3600
    sfox_max_attempts: int = 4
    sfox_timeout_seconds: float = 30.0
    sfox_rate_limit_per_10s: int = 200
    balance_check: str = "required"
    # The balance route's pace, per process (bot/sfox/balances.py): sFOX allows about 5 reads per
    # 10 s, and 4 leaves headroom. Only a fake sFOX (the sandbox's) may be read faster.
    balance_reads_per_10s: int = 4
    batch_max: int = 500
    batch_balance_max: int = 20
    sweep_interval_seconds: float = 60.0
    # Issue 26: worker processes `sfox-bot run` starts beside its web process (0: one process
    # does both, as before the split).
    workers: int = 1
    # Issue 19: `--when-empty` re-reads the balances this often, for at most this long; `--at`
    # schedules at most this far ahead.
    watch_interval_seconds: float = 900.0
    watch_days: int = 14
    schedule_max_days: int = 90
    # Issue 32: Retry (after a failure that changed nothing) is offered for this long after the
    # request failed, and never behind a newer request for the same sFOX user.
    retry_window_hours: float = 24.0
    audit_key: str | None = field(default=None, repr=False)
    audit_channel: str | None = None
    audit_anchor_minutes: int = 60
    # The audit trail streamed out (issue 20, bot/audit/stream.py): where, signed with what, and how
    # long the one replica sending holds its lease before another may take over.
    audit_webhook_url: str | None = None
    audit_webhook_secret: str | None = field(default=None, repr=False)
    audit_webhook_lease_seconds: float = 30.0
    # Visibility (issue 13): the one reminder, a required reason, Socket Mode's ops port.
    remind_after_fraction: float = 0.5
    require_reason: bool = False
    # The second factor on Approve (issue 18): "none" or "totp"; its secrets sealed with a key
    # derived from SFOX_MFA_KEY (bot/mfa/sealing.py), required when it is "totp".
    step_up: str = "none"
    mfa_key: str | None = field(default=None, repr=False)
    # The intake API's shared secret (issue 20, bot/intake/): signs its requests and callbacks;
    # unset, the API is off.
    intake_secret: str | None = field(default=None, repr=False)
    # Its callbacks' allow-list (empty: any public address) and attempts (issue 32).
    intake_callback_hosts: AllowedHosts = frozenset()
    intake_callback_attempts: int = 60
    # Issue 32: an intake request must name its Slack user (the file's `intake:` with SFOX_POLICY_FILE).
    intake_require_slack_user: bool = False
    metrics_port: int = 9090
    database_url: str = "sqlite:///sfox-bot.db"
    host: str = "0.0.0.0"
    port: int = 3000
    log_format: str = "text"
    log_level: str = "INFO"

    @property
    def socket_mode(self) -> bool:
        return bool(self.slack_app_token)

    def secrets(self) -> list[str]:
        """Every secret value, so logging can scrub them wherever they might leak."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.sfox_api_key,
            self.audit_key,
            self.audit_webhook_secret,
            self.mfa_key,
            self.intake_secret,
        ]
        values += _password_of(self.database_url)
        return [v for v in values if v]

    def require(self, *names: str) -> Settings:
        """Raise for the first of `names` (environment-variable names) that is unset."""
        for name in names:
            if not getattr(self, _ATTR_OF[name]):
                raise ConfigError(name, "is required but not set")
        return self

    def require_for_run(self) -> Settings:
        missing = self.missing_for_run()
        if missing:
            raise missing[0]
        return self

    def missing_for_run(self) -> list[ConfigError]:
        """Every setting `run` needs but lacks, so `sfox-bot check` can name them all at once."""
        names = ["SLACK_BOT_TOKEN", "SFOX_API_KEY"]
        if not self.socket_mode:
            names.append("SLACK_SIGNING_SECRET")
        missing = [ConfigError(n, "is required but not set") for n in names if not getattr(self, _ATTR_OF[n])]
        if self.policy is None and not self.approvers and not self.approver_group:
            missing.append(ConfigError("SFOX_APPROVERS", "is required (or set SFOX_APPROVER_GROUP)"))
        if self.effective_step_up == "totp" and not self.mfa_key:
            where = "the policy file's step_up is totp" if self.policy else "SFOX_STEP_UP=totp"
            missing.append(ConfigError("SFOX_MFA_KEY", f"is required when {where}"))
        if self.intake_secret and not self.default_channel:
            missing.append(
                ConfigError(
                    "SFOX_DEFAULT_CHANNEL", "is required when SFOX_INTAKE_SECRET is set (the cards go there)"
                )
            )
        if (unsigned := self.unsigned_webhook()) is not None:
            missing.append(unsigned)
        return missing

    def unsigned_webhook(self) -> ConfigError | None:
        """SFOX_AUDIT_WEBHOOK_SECRET is required with the URL: every POST of the stream is signed."""
        if self.audit_webhook_url and not self.audit_webhook_secret:
            return ConfigError("SFOX_AUDIT_WEBHOOK_SECRET", "is required when SFOX_AUDIT_WEBHOOK_URL is set")
        return None

    @property
    def effective_step_up(self) -> str:
        """The second factor in force: the policy file's `step_up`, or SFOX_STEP_UP without a file."""
        return self.policy.step_up if self.policy is not None else self.step_up

    def policy_spec(self) -> PolicySpec:
        """The approval policy in force: the file's, or the one the approver settings describe."""
        if self.policy is not None:
            return self.policy
        return legacy_spec(
            self.approvers, self.approver_group, self.required_approvals, self.intake_require_slack_user
        )


# With SFOX_POLICY_FILE, these must be unset: the file says who asks and approves, whether Approve
# needs a second factor (`step_up`) and whether an intake request must name its Slack user (`intake`).
POLICY_REPLACES = (
    "SFOX_APPROVERS",
    "SFOX_APPROVER_GROUP",
    "SFOX_REQUIRED_APPROVALS",
    "SFOX_STEP_UP",
    "SFOX_INTAKE_REQUIRE_SLACK_USER",
)


_ATTR_OF = {
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_APP_TOKEN": "slack_app_token",
    "SFOX_API_KEY": "sfox_api_key",
    "SFOX_APPROVERS": "approvers",
    "DATABASE_URL": "database_url",
}


def default_workers() -> int:
    """Workers beside the web process when SFOX_WORKERS is not set: one per core, at most four
    (the work waits on sFOX and Slack far more than it computes; sFOX's limit, not the workers,
    sets a batch's pace)."""
    return max(1, min(4, os.cpu_count() or 1))


def load_settings(env: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
    """Build Settings from `env` (default: the process environment plus `./.env`)."""
    get = EnvReader(read_env(dotenv) if env is None else env)
    return Settings(
        slack_bot_token=get.secret("SLACK_BOT_TOKEN", prefix="xoxb-"),
        slack_signing_secret=get.secret("SLACK_SIGNING_SECRET"),
        slack_app_token=get.secret("SLACK_APP_TOKEN", prefix="xapp-"),
        slack_api_url=get.url("SLACK_API_URL", "https://slack.com/api/"),
        sfox_api_key=get.secret("SFOX_API_KEY"),
        sfox_api_url=get.url("SFOX_API_URL", "https://api.sfox.com").rstrip("/"),
        approvers=get.id_list("SFOX_APPROVERS", SLACK_USER_ID, "Slack user ids like U012ABCDEF"),
        approver_group=get.matching(
            "SFOX_APPROVER_GROUP", SLACK_GROUP_ID, "a Slack user group id like S0123ABC"
        ),
        allowed_channels=get.id_list(
            "SFOX_ALLOWED_CHANNELS", SLACK_CHANNEL_ID, "Slack channel ids like C012ABC"
        ),
        default_channel=get.matching(
            "SFOX_DEFAULT_CHANNEL", SLACK_CHANNEL_ID, "a Slack channel id like C012ABC"
        ),
        required_approvals=get.integer("SFOX_REQUIRED_APPROVALS", 1, low=1, high=10),
        policy_file=(policy_file := get.raw("SFOX_POLICY_FILE")),
        policy=_policy(get, policy_file),
        request_ttl_seconds=get.integer("SFOX_REQUEST_TTL_SECONDS", 3600, low=1, high=30 * 86400),
        sfox_max_attempts=get.integer("SFOX_MAX_ATTEMPTS", 4, low=1, high=20),
        sfox_timeout_seconds=get.number("SFOX_TIMEOUT_SECONDS", 30.0, low=0.1, high=600),
        sfox_rate_limit_per_10s=get.integer("SFOX_RATE_LIMIT_PER_10S", 200, low=1, high=250),
        balance_check=get.choice("SFOX_BALANCE_CHECK", "required", ("required", "advisory", "off")),
        balance_reads_per_10s=get.integer("SFOX_BALANCE_READS_PER_10S", 4, low=1, high=1000),
        batch_max=get.integer("SFOX_BATCH_MAX", 500, low=1, high=5000),
        batch_balance_max=get.integer("SFOX_BATCH_BALANCE_MAX", 20, low=0, high=5000),
        sweep_interval_seconds=get.number("SFOX_SWEEP_INTERVAL_SECONDS", 60.0, low=0.05, high=86400),
        workers=get.integer("SFOX_WORKERS", default_workers(), low=0, high=64),
        watch_interval_seconds=get.number("SFOX_WATCH_INTERVAL_SECONDS", 900.0, low=0.05, high=7 * 86400),
        watch_days=get.integer("SFOX_WATCH_DAYS", 14, low=1, high=90),
        schedule_max_days=get.integer("SFOX_SCHEDULE_MAX_DAYS", 90, low=1, high=366),
        retry_window_hours=get.number("SFOX_RETRY_WINDOW_HOURS", 24.0, low=0.01, high=8760, unit="hours"),
        audit_key=get.secret("SFOX_AUDIT_KEY", min_length=AUDIT_KEY_MIN_LENGTH),
        audit_channel=get.matching("SFOX_AUDIT_CHANNEL", SLACK_CHANNEL_ID, "a Slack channel id like C012ABC"),
        audit_anchor_minutes=get.integer("SFOX_AUDIT_ANCHOR_MINUTES", 60, low=1, high=7 * 24 * 60),
        audit_webhook_url=get.optional_url("SFOX_AUDIT_WEBHOOK_URL"),
        audit_webhook_secret=get.secret(
            "SFOX_AUDIT_WEBHOOK_SECRET", min_length=AUDIT_WEBHOOK_SECRET_MIN_LENGTH
        ),
        audit_webhook_lease_seconds=get.number("SFOX_AUDIT_WEBHOOK_LEASE_SECONDS", 30.0, low=1, high=3600),
        remind_after_fraction=get.number("SFOX_REMIND_AFTER_FRACTION", 0.5, low=0.0, high=1.0),
        require_reason=get.choice("SFOX_REQUIRE_REASON", "false", ("true", "false")) == "true",
        step_up=get.choice("SFOX_STEP_UP", "none", STEP_UPS),
        mfa_key=get.secret("SFOX_MFA_KEY", min_length=MFA_KEY_MIN_LENGTH),
        intake_secret=get.secret("SFOX_INTAKE_SECRET", min_length=INTAKE_SECRET_MIN_LENGTH),
        intake_callback_hosts=get.callback_hosts("SFOX_INTAKE_CALLBACK_HOSTS"),
        intake_callback_attempts=get.integer("SFOX_INTAKE_CALLBACK_ATTEMPTS", 60, low=1, high=10000),
        intake_require_slack_user=get.choice("SFOX_INTAKE_REQUIRE_SLACK_USER", "false", ("true", "false"))
        == "true",
        metrics_port=get.integer("METRICS_PORT", 9090, low=0, high=65535),
        database_url=get.database_url("DATABASE_URL", "sqlite:///sfox-bot.db"),
        host=get.text("HOST", "0.0.0.0"),
        port=get.integer("PORT", 3000, low=0, high=65535),
        log_format=get.choice("LOG_FORMAT", "text", ("text", "json")),
        log_level=get.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
    )


def _policy(get: EnvReader, path: str | None) -> PolicySpec | None:
    """The policy file's policy, checked; None without a file. Read after the approver settings,
    which must then be unset."""
    if path is None:
        return None
    clashing = [name for name in POLICY_REPLACES if get.raw(name) is not None]
    if clashing:
        raise ConfigError(
            "SFOX_POLICY_FILE",
            f"is set, so {', '.join(clashing)} must be unset "
            "(the policy file says who asks and approves, its step_up whether Approve needs a code, "
            "and its intake whether an intake request must name its Slack user)",
        )
    try:
        return load_policy_file(path)
    except PolicyFileError as exc:
        raise ConfigError("SFOX_POLICY_FILE", exc.problem) from None


def read_env(dotenv: bool = True) -> Mapping[str, str]:
    """The process environment, after loading `.env` from the working directory (not a parent);
    variables already set in the environment win over the file."""
    if dotenv:
        from dotenv import load_dotenv

        # Exactly ./.env: dotenv's own search would start from this package's directory.
        load_dotenv(os.path.join(os.getcwd(), ".env"), override=False)
    return os.environ


def setting_names() -> list[str]:
    """Every environment variable `load_settings` reads, in order: the one list of settings, for
    `sfox-bot check` and the README test."""
    seen: list[str] = []

    class Recorder(dict[str, str]):
        def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
            seen.append(key)
            return super().get(key, default)

    load_settings(Recorder())
    return list(dict.fromkeys(seen))


def _password_of(url: str) -> list[str | None]:
    """The DATABASE_URL password, as written and percent-decoded: a secret like the tokens."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []
