"""`sfox-bot console`: be every Slack user yourself. Type the slash command, click the buttons as
alice, bob or mallory, and see what each of them would see in Slack, printed as text.

It runs on the same machinery as the demo (bot/sandbox/harness.py): the real bot, a fake Slack, and the fake
sFOX, or the real sFOX API when `--real-sfox` is given on purpose. Commands come from standard
input, so it works interactively and from a pipe alike (a piped session echoes each line after the
prompt, so the output reads as a transcript).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import TextIO

from bot.cli.common import CliError
from bot.cli.history import write_table
from bot.config import load_settings
from bot.logs import configure
from bot.policy.when import relative_delta
from bot.sandbox.harness import BUTTONS, CHANNEL_NAME, RealSfox, Sandbox, SandboxError, database
from bot.sandbox.people import set_group
from bot.sandbox.transcript import Typed, card_lines, plain
from bot.sfox.balances import describe_funds, parse_balances
from bot.slack.blocks import card

COMMAND = "/sfox-deactivate"
CONFIRMATION = "yes"

HELP = f"""\
  {COMMAND} <sfox_user_id> [reason] [--when-empty | --at <when>]
                                  the slash command, typed as the current user
  approve N | deny N [reason] | retry N
                                  click that button on card #N as the current user (Deny
                                  opens a dialog: the reason, if any, is typed there)
  sweep                           what the bot does every minute: expiry, reminders, owed messages
  later +90m | +2h | +3d          move the bot's clock on, then sweep: a watch's next read, a
                                  deactivation scheduled with --at, an expiry
  as NAME                         become someone else (see `users`)
  users                           who is who, who may approve, and the fake sFOX accounts
  history                         the recorded requests, newest first (as `sfox-bot history`)
  show N                          card #N as it stands now, and its audit trail
  group S… NAME,NAME              (with --policy) who is in that Slack user group from now on
  help                            this list
  quit                            leave (end of input does the same)"""


def run(
    *,
    fresh: bool,
    real_sfox: bool,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    policy_file: str | None = None,
) -> int:
    stdin = stdin or sys.stdin
    out = out or sys.stdout
    target = _confirm_real_sfox(stdin) if real_sfox else None
    with database(fresh) as path:
        try:
            with Sandbox(path, real_sfox=target, policy_file=policy_file) as sandbox:
                assert sandbox.settings is not None
                configure("WARNING", "text", sandbox.settings.secrets())
                Console(sandbox, stdin, out).loop()
        except SandboxError as exc:
            raise CliError(f"console: {exc}") from None
    return 0


class Console:
    def __init__(self, sandbox: Sandbox, stdin: TextIO, out: TextIO) -> None:
        self.sb = sandbox
        self.stdin = stdin
        self.out = out
        self.me = "alice"
        self.interactive = stdin.isatty()
        self.commands: dict[str, Callable[[str], bool | None]] = {
            "help": self.help,
            "?": self.help,
            "users": self.users,
            "as": self.become,
            "history": self.history,
            "show": self.show,
            "sweep": self.sweep,
            "later": self.later,
            "group": self.group,
            "quit": self.quit,
            "exit": self.quit,
        }

    def loop(self) -> None:
        if self.interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 - gives input() line editing and history
        self.banner()
        while True:
            line = self.read()
            if line is None:
                break
            try:
                if self.handle(line.strip()) is False:
                    break
            except SandboxError as exc:
                self.say(f"!! {exc}")

    def read(self) -> str | None:
        prompt = f"{self.me}> "
        try:
            if self.interactive:
                return input(prompt)
            line = self.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            self.say("")
            return None
        if not line:
            return None
        self.say(prompt + line.rstrip("\n"))
        return line

    def handle(self, line: str) -> bool | None:
        """Run one line; False means leave."""
        if not line or line.startswith("#"):
            return None
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        if word == COMMAND:
            # What was typed is on screen already: show only what followed.
            entries = [e for e in self.sb.command(self.me, rest) if not isinstance(e, Typed)]
            self.say(*self.sb.render(entries))
            return None
        if word.startswith("/"):
            self.say(f"  {word} is not a command here; the bot has only {COMMAND}.")
            return None
        if word in BUTTONS:
            number_text, _, reason = rest.partition(" ")
            number = _request_number(number_text)
            if number is None:
                self.say(f"  Which card? `{word} N`, with N the request number shown on the card.")
                return None
            self.say(*self.sb.render(self.sb.click(self.me, word, number, reason=reason.strip() or None)))
            return None
        action = self.commands.get(word.lower())
        if action is None:
            self.say(f"  Unknown command {plain(word)!r}; type `help`.")
            return None
        return action(rest)

    # -- commands ------------------------------------------------------------------------------

    def banner(self) -> None:
        target = (
            f"the sFOX API at {self.sb.real_sfox.url} (--real-sfox: approved means deactivated for good)"
            if self.sb.real_sfox
            else f"a fake sFOX at {self.sb.fake_sfox.url if self.sb.fake_sfox else '?'} "
            "(`users` lists its accounts and their balances; other ids are unknown)"
        )
        self.say(
            f"sfox-bot console: the real bot in #{CHANNEL_NAME}, a fake Slack, and {target}.",
            f"Database: {self.sb.database_path}",
            f"You are {self.me}. Type `help` for the commands, `users` for who is who.",
        )

    def help(self, _rest: str) -> None:
        self.say(HELP)

    def users(self, _rest: str) -> None:
        for name, user_id in self.sb.people.items():
            role = "approver" if self.sb.is_approver(name) else "not an approver"
            marker = "  ← you" if name == self.me else ""
            self.say(f"  {name:<8} {user_id:<9} {role}{marker}")
        self.accounts()

    def accounts(self) -> None:
        """The fake sFOX's accounts with their balances, as the bot would read them."""
        fake = self.sb.fake_sfox
        if fake is None:
            self.say("  sFOX accounts: the real sFOX; balances are read when a request is made.")
            return
        self.say("  sFOX accounts (fake):")
        with fake.lock:
            users = {uid: dict(u) for uid, u in fake.users.items() if uid not in fake.deactivated}
        for uid, user in users.items():
            name = plain(f"{user.get('first_name') or ''} {user.get('last_name') or ''}".strip())
            held = describe_funds(parse_balances(fake.balances_of(uid)))
            balances = "all zero" if held == "none" else held
            if user.get("balance_fails"):
                balances += f"; the balance read fails (HTTP {user['balance_fails']})"
            if user.get("funds_after_read"):
                later = describe_funds(parse_balances(user["funds_after_read"]))
                balances += f"; then {later} arrives right after the first read"
            if user.get("drains_after_reads") is not None:
                balances += f"; withdrawn after {user['drains_after_reads']} balance reads"
            self.say(
                f"    {plain(uid):<18} {name:<18} {plain(str(user.get('status'))):<9} balances: {balances}"
            )

    def become(self, rest: str) -> None:
        name = rest.lower()
        if name not in self.sb.people:
            self.say(f"  Nobody called {plain(rest)!r}; people here: {', '.join(self.sb.people)}.")
            return
        self.me = name
        role = "an approver" if self.sb.is_approver(name) else "not an approver"
        self.say(f"  You are now {name} ({self.sb.people[name]}, {role}).")

    def group(self, rest: str) -> None:
        group_id, _, names = rest.partition(" ")
        if not group_id.startswith("S") or not names.strip():
            self.say("  Usage: `group S0GROUP alice,bob` (a Slack user group id and who is in it).")
            return
        members = set_group(self.sb, group_id, [n.strip() for n in names.split(",") if n.strip()])
        self.say(f"  {group_id} now holds {', '.join(members)}.")

    def history(self, _rest: str) -> None:
        write_table(self.sb.store.history(limit=50), self.out)

    def show(self, rest: str) -> None:
        number = _request_number(rest)
        record = self.sb.store.get(number) if number is not None else None
        if record is None:
            self.say(f"  No request {plain(rest) or '(give its number)'}.")
            return
        self.say(*("  " + line for line in card_lines(card(record), self.sb.names)))
        self.say("  audit trail:")
        for event in self.sb.store.events_for(record.id):
            parts = [event.at.strftime("%H:%M:%S"), f"{event.kind:<18}"]
            if event.actor:
                parts.append(self.sb.names.get(event.actor, event.actor))
            if event.http_status is not None:
                parts.append(f"http={event.http_status}")
            if event.detail:
                parts.append(plain(event.detail))
            self.say("    " + "  ".join(parts))

    def sweep(self, _rest: str) -> None:
        self.say(*self.sb.render(self.sb.sweep()) or ["  (nothing to do)"])

    def later(self, rest: str) -> None:
        delta = relative_delta(rest)
        if delta is None:
            self.say(
                "  Usage: `later +90m`, `later +2h` or `later +3d` (how far to move the bot's clock on)."
            )
            return
        self.say(*self.sb.render(self.sb.later(delta)) or ["  (nothing fell due)"])

    def quit(self, _rest: str) -> bool:
        return False

    def say(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()


def _request_number(text: str) -> int | None:
    text = text.strip().lstrip("#")
    return int(text) if text.isdigit() and len(text) <= 12 else None


def _confirm_real_sfox(stdin: TextIO) -> RealSfox:
    """The real API only when both settings are there, and after the operator typed yes."""
    from dotenv import load_dotenv

    load_dotenv(override=False)
    named = {k: os.environ[k] for k in ("SFOX_API_URL", "SFOX_API_KEY") if os.environ.get(k, "").strip()}
    missing = [k for k in ("SFOX_API_URL", "SFOX_API_KEY") if k not in named]
    if missing:
        raise CliError(f"--real-sfox needs {' and '.join(missing)} in the environment (or ./.env)")
    settings = load_settings(named)
    assert settings.sfox_api_key is not None
    warn = sys.stderr
    warn.write(
        "\n"
        "!!! WARNING: --real-sfox talks to the REAL sFOX API at "
        f"{settings.sfox_api_url}\n"
        "!!! An approved request DEACTIVATES A REAL ACCOUNT. sFOX has no reactivation: it is PERMANENT.\n"
        "!!! Here you play every user, so the two-person rule is only simulated.\n"
        f'Type "{CONFIRMATION}" to go on, anything else to stop: '
    )
    warn.flush()
    answer = stdin.readline().strip()
    if not stdin.isatty():
        warn.write(answer + "\n")
    if answer != CONFIRMATION:
        raise CliError("not confirmed; nothing was sent to sFOX")
    return RealSfox(settings.sfox_api_url, settings.sfox_api_key)
