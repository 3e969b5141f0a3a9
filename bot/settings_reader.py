"""One environment variable at a time, parsed or refused with the variable's name: the reader
bot/config.py builds its Settings with, apart so that file stays the list of settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from bot.webhooks.destinations import AllowedHosts, parse_allowed_hosts


class ConfigError(Exception):
    """A setting is missing or malformed; `setting` names it so the operator knows what to fix."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class EnvReader:
    """Parses one environment variable at a time; every failure names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def secret(self, name: str, prefix: str | None = None, min_length: int = 0) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if any(c.isspace() for c in value):
            raise ConfigError(name, "must not contain whitespace")
        if len(value) < min_length:
            raise ConfigError(name, f"must be at least {min_length} characters long")
        if prefix and not value.startswith(prefix):
            # The value itself is never echoed: it is a secret.
            raise ConfigError(name, f"must start with {prefix!r}")
        return value

    def url(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(name, f"must be an http(s) URL, got {value!r}")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(name, "must be a plain base URL without credentials, query or fragment")
        return value

    def optional_url(self, name: str) -> str | None:
        """An http(s) URL that may carry a path (a webhook's), or None when unset."""
        return None if self.raw(name) is None else self.url(name, "")

    def database_url(self, name: str, default: str) -> str:
        value = self.raw(name) or default
        scheme = value.split(":", 1)[0]
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ConfigError(name, "must be a sqlite:/// or postgresql+psycopg:// URL")
        if scheme == "postgresql" or scheme == "postgres":
            value = "postgresql+psycopg" + value[len(scheme) :]
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(name, f"must be between {low} and {high}, got {number}")
        return number

    def number(self, name: str, default: float, *, low: float, high: float, unit: str = "seconds") -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number of {unit}, got {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(name, f"must be between {low:g} and {high:g}, got {number:g}")
        return number

    def id_list(self, name: str, pattern: re.Pattern[str], what: str) -> frozenset[str]:
        value = self.raw(name)
        if value is None:
            return frozenset()
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if not pattern.match(item):
                raise ConfigError(name, f"must be comma-separated {what}; {item!r} is not one")
        return frozenset(items)

    def callback_hosts(self, name: str) -> AllowedHosts:
        value = self.raw(name)
        try:
            return frozenset() if value is None else parse_allowed_hosts(value)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None

    def matching(self, name: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = self.raw(name)
        if value is not None and not pattern.match(value):
            raise ConfigError(name, f"must be {what}, got {value!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...], upper: bool = False) -> str:
        value = self.raw(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value
