"""The intake API (issue 20): back-office systems open deactivation requests over signed HTTP
(`POST /api/v1/requests`), read them back, and are called back with the final outcome."""
