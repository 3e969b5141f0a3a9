"""`sfox-bot check`: is this deployment configured right? Every setting is validated on its own
(so all problems show at once, not the first), then the database, and with `--online` the Slack
and sFOX credentials, through harmless calls. Secret values are never printed: a secret shows as
"set (hidden)", and every detail line is scrubbed of secrets before it is shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import make_url

from bot.audit.stream import host_of
from bot.config import ConfigError, Settings, load_settings, setting_names
from bot.logs import Redactor
from bot.sfox.client import SfoxClient
from bot.sfox.errors import SfoxError
from bot.sfox.userid import InvalidUserId, parse_user_id
from bot.slack.calls import make_web_client, slack_failure
from bot.store import migrate
from bot.store.db import Store


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_settings(env: Mapping[str, str]) -> tuple[list[Check], Settings | None]:
    """One row per setting; the Settings when they all parse (None otherwise)."""
    rows: list[Check] = []
    for name in setting_names():
        raw = env.get(name)
        try:
            alone = load_settings({name: raw} if raw is not None else {})
        except ConfigError as exc:
            rows.append(Check(name, False, exc.problem))
            continue
        rows.append(Check(name, True, _describe(name, raw, alone)))
    try:
        settings = load_settings(env)
    except ConfigError as exc:
        if all(row.ok for row in rows):  # a problem between settings, not within one
            rows.append(Check(exc.setting, False, exc.problem))
        return rows, None
    missing = {e.setting: e.problem for e in settings.missing_for_run()}
    rows = [replace(r, ok=False, detail=missing[r.name]) if r.name in missing else r for r in rows]
    mode = "Socket Mode (SLACK_APP_TOKEN is set)" if settings.socket_mode else "HTTP"
    if not settings.socket_mode:
        mode += f" on {settings.host}:{settings.port}, POST /slack/events"
    rows.append(Check("run mode", True, mode))
    return rows, settings


def check_database(settings: Settings) -> Check:
    name = "database"
    try:
        url = make_url(settings.database_url)
    except Exception as exc:
        return Check(name, False, f"DATABASE_URL cannot be parsed: {_first_line(exc)}")
    on_disk = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if on_disk and not Path(str(url.database)).exists():
        return Check(name, False, f"{url.database} does not exist: run `sfox-bot migrate`")
    try:
        store = Store.from_url(settings.database_url)
    except Exception as exc:
        return Check(name, False, f"cannot be used: {_first_line(exc)}")
    try:
        current = migrate.current_revision(store.engine)
    except Exception as exc:
        return Check(name, False, f"unreachable: {_first_line(exc)}")
    finally:
        store.close()
    head = migrate.head_revision()
    if current != head:
        return Check(name, False, f"schema at {current or 'nothing'}, head is {head}: run `sfox-bot migrate`")
    return Check(name, True, f"reachable, schema at head ({head})")


def check_online(settings: Settings, probe_user: str | None = None) -> list[Check]:
    """Prove the credentials with calls that change nothing."""
    rows = [_slack_auth(settings)]
    if settings.slack_app_token:
        rows.append(_slack_app_token(settings))
    # Every user group the policy names (SFOX_APPROVER_GROUP, or the policy file's).
    rows += [_slack_group(settings, group) for group in settings.policy_spec().groups]
    rows.append(_sfox(settings))
    rows.append(_sfox_user_tokens(settings, probe_user))
    return rows


def run_checks(env: Mapping[str, str], *, online: bool, probe_user: str | None = None) -> list[Check]:
    rows, settings = check_settings(env)
    if settings is None:
        return rows
    rows.append(check_database(settings))
    if online:
        rows.extend(check_online(settings, probe_user))
    scrub = Redactor(settings.secrets()).scrub
    return [replace(r, detail=scrub(r.detail)) for r in rows]


def render(rows: list[Check], out: TextIO) -> None:
    width = max(len("CHECK"), *(len(r.name) for r in rows))
    out.write(f"{'CHECK':<{width}}  RESULT  DETAIL\n")
    for r in rows:
        out.write(f"{r.name:<{width}}  {'ok' if r.ok else 'FAIL':<6}  {r.detail}\n")
    failed = sum(1 for r in rows if not r.ok)
    out.write("all checks passed\n" if not failed else f"{failed} check(s) failed\n")


# -- the single checks ------------------------------------------------------------------------


def _describe(name: str, raw: str | None, alone: Settings) -> str:
    if raw is None or not raw.strip():
        return "not set (default applies)"
    if name == "DATABASE_URL":
        try:
            return make_url(alone.database_url).render_as_string(hide_password=True)
        except Exception:
            return "set (unparsable; see the database row)"
    if alone.secrets():
        return "set (hidden)"
    if alone.audit_webhook_url:  # a webhook's path may carry a token
        return f"set (host {host_of(alone.audit_webhook_url)})"
    value = raw.strip()
    return value if len(value) <= 80 else value[:79] + "…"


def _slack_auth(settings: Settings) -> Check:
    name = "Slack bot token (auth.test)"
    if not settings.slack_bot_token:
        return Check(name, False, "SLACK_BOT_TOKEN is not set")
    client = make_web_client(settings.slack_bot_token, settings.slack_api_url)
    try:
        data = client.auth_test().data
    except Exception as exc:
        return Check(name, False, f"Slack said {_slack_error(exc)}")
    assert isinstance(data, dict)
    return Check(name, True, f"bot user {data.get('user_id')} in workspace {data.get('team')}")


def _slack_app_token(settings: Settings) -> Check:
    name = "Slack app token (apps.connections.open)"
    client = make_web_client(settings.slack_app_token or "", settings.slack_api_url)
    try:
        client.apps_connections_open(app_token=settings.slack_app_token or "")
    except Exception as exc:
        return Check(name, False, f"Slack said {_slack_error(exc)} (needs scope connections:write)")
    return Check(name, True, "Socket Mode connections can be opened")


def _slack_group(settings: Settings, group: str) -> Check:
    name = "Slack approver group (usergroups.users.list)"
    if settings.policy is not None:
        name = f"Slack user group {group} (usergroups.users.list)"
    client = make_web_client(settings.slack_bot_token or "", settings.slack_api_url)
    try:
        data = client.usergroups_users_list(usergroup=group).data
    except Exception as exc:
        code = _slack_error(exc)
        hint = " (add the usergroups:read scope and reinstall the app)" if code == "missing_scope" else ""
        return Check(name, False, f"Slack said {code}{hint}")
    assert isinstance(data, dict)
    return Check(name, True, f"{group}: {len(data.get('users') or [])} member(s)")


def _sfox(settings: Settings) -> Check:
    name = "sFOX API key (GET /v1/enterprise/users)"
    if not settings.sfox_api_key:
        return Check(name, False, "SFOX_API_KEY is not set")
    client = SfoxClient(
        settings.sfox_api_url,
        settings.sfox_api_key,
        timeout_seconds=min(settings.sfox_timeout_seconds, 15.0),
        max_attempts=2,
    )
    try:
        result = client.ping()
    except SfoxError as exc:
        hints = {401: "check SFOX_API_KEY", 403: "this key may not use the enterprise API", None: ""}
        hint = hints.get(exc.status, "") or ("is SFOX_API_URL right?" if exc.status is None else "")
        status = f"HTTP {exc.status}" if exc.status else "no answer"
        return Check(name, False, f"{exc.message} ({status}){'; ' + hint if hint else ''}")
    finally:
        client.close()
    return Check(name, True, f"{settings.sfox_api_url} answered {result.status}")


def _sfox_user_tokens(settings: Settings, probe_user: str | None) -> Check:
    """May the key create user tokens (needed to read balances)? A token is asked for the user
    the operator named and dropped unused: nothing changes on the account."""
    name = "sFOX user tokens (POST /v1/enterprise/user-tokens)"
    if probe_user is None:
        return Check(name, True, "skipped: name an existing sFOX user with --probe-user ID to test it")
    try:
        user_id = parse_user_id(probe_user)
    except InvalidUserId as exc:
        return Check(name, False, f"--probe-user is not a valid sFOX user id: {exc}")
    if not settings.sfox_api_key:
        return Check(name, False, "SFOX_API_KEY is not set")
    client = SfoxClient(
        settings.sfox_api_url,
        settings.sfox_api_key,
        timeout_seconds=min(settings.sfox_timeout_seconds, 15.0),
        max_attempts=2,
    )
    try:
        client.create_user_token(user_id)  # dropped at once: never printed or kept
    except SfoxError as exc:
        hints = {
            403: "this key may not create user tokens: every card will say balances not checked "
            "(ask sFOX to allow it, or set SFOX_BALANCE_CHECK=off)",
            404: f"sFOX does not know {user_id}: pass an existing user id",
            401: "check SFOX_API_KEY",
        }
        status = f"HTTP {exc.status}" if exc.status else "no answer"
        hint = hints.get(exc.status or 0, "")
        return Check(name, False, f"{exc.message} ({status}){'; ' + hint if hint else ''}")
    finally:
        client.close()
    return Check(name, True, f"the key may create user tokens (one for {user_id} was issued and dropped)")


def _slack_error(exc: Exception) -> str:
    failure = slack_failure(exc)
    if failure is None:
        return f"nothing ({type(exc).__name__}: could not reach it)"
    return failure.code or f"HTTP {failure.http_status}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
