"""SFOX_POLICY_FILE: the approval policy as a compliance officer writes it down, read and checked.

    requesters: [U0HELP1, S0HELPDESK]   # who may ask; default: every person in any stage
    approvals:                          # stages; every stage must be met, by distinct people
      - from: [S0COMPLIANCE]            # users (U…/W…) and/or user groups (S…)
        count: 1
        name: Compliance                # optional; default: its members
      - from: [UBOB, UCAROL]
        count: 1
    step_up: none                       # none (default) | totp
    intake:                             # the intake API (issue 32)
      require_slack_user: false         # true: a request must name its Slack user (slack_user_id)

The file is read once, at start-up and by `sfox-bot check`. Every mistake is a `PolicyFileError`
(said as SFOX_POLICY_FILE's ConfigError by bot/config.py) whose one line names the file, the line
and what is wrong: the YAML is composed into its node tree with the safe loader (nothing is
constructed, and any tag is refused) so each value keeps the line it was written on.
Without a file, SFOX_APPROVERS, SFOX_APPROVER_GROUP, SFOX_REQUIRED_APPROVALS and
SFOX_INTAKE_REQUIRE_SLACK_USER are read as the equivalent policy (`legacy_spec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bot.policy.stages import Stage, assign
from bot.slack.ids import SLACK_GROUP_ID, SLACK_USER_ID

STEP_UPS = ("none", "totp")
MAX_NAME = 80
MAX_COUNT = 10
_TOP_KEYS = ("requesters", "approvals", "step_up", "intake")
_STAGE_KEYS = ("from", "count", "name")
_INTAKE_KEYS = ("require_slack_user",)
_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"


class PolicyFileError(Exception):
    """A mistake in the policy file: `problem` names the file, the line and what is wrong (bot/config.py
    says it as SFOX_POLICY_FILE's ConfigError)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class PolicySpec:
    """The policy as written: who may ask (None: every person in any stage), the stages, the second
    factor. Ids only; who is in a group is read from Slack when it matters (bot/policy/approvers.py)."""

    stages: tuple[Stage, ...]
    requesters: tuple[str, ...] | None = None
    step_up: str = "none"
    source: str | None = None  # the file it was read from; None: the environment's settings
    # `intake: {require_slack_user: true}`: an intake API request must name its Slack user.
    intake_require_slack_user: bool = False

    @property
    def groups(self) -> tuple[str, ...]:
        """Every user group the policy names, in order of first mention."""
        ids = [m for s in self.stages for m in s.groups] + [r for r in self.requesters or () if _is_group(r)]
        return tuple(dict.fromkeys(ids))


def legacy_spec(
    approvers: frozenset[str],
    group: str | None,
    required_approvals: int,
    intake_require_slack_user: bool = False,
) -> PolicySpec:
    """SFOX_APPROVERS, SFOX_APPROVER_GROUP, SFOX_REQUIRED_APPROVALS and
    SFOX_INTAKE_REQUIRE_SLACK_USER as a policy: one stage of every approver, `required_approvals`
    of them; every approver may ask."""
    members = tuple(sorted(approvers)) + ((group,) if group else ())
    return PolicySpec(
        stages=(Stage(count=required_approvals, members=members),),
        intake_require_slack_user=intake_require_slack_user,
    )


def load_policy_file(path: str) -> PolicySpec:
    """Read and check the policy file at `path`; raise PolicyFileError naming the file, the line and
    the mistake."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError(f"{path}: cannot be read ({type(exc).__name__})") from None
    return _Checker(path).check(text)


def _is_group(member: str) -> bool:
    return bool(SLACK_GROUP_ID.match(member))


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: Node | None, problem: str, line: int | None = None) -> PolicyFileError:
        if line is None:
            line = node.start_mark.line + 1 if node is not None else 1
        return PolicyFileError(f"{self.path}, line {line}: {problem}")

    def check(self, text: str) -> PolicySpec:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            raise self.fail(None, f"not valid YAML ({exc.problem or exc.context})", line) from None
        except yaml.YAMLError as exc:
            raise self.fail(None, f"not valid YAML ({type(exc).__name__})") from None
        if root is None:
            raise self.fail(None, "the file is empty; it needs at least `approvals:`")
        self.plain(root)
        top = self.mapping(root, "the policy", _TOP_KEYS)
        if "approvals" not in top:
            raise self.fail(root, "`approvals:` is missing: list at least one stage")
        stages = self.stages(top["approvals"])
        requesters = self.ids(top["requesters"], "`requesters`") if "requesters" in top else None
        step_up = "none"
        if "step_up" in top:
            node = top["step_up"]
            step_up = self.text(node, "`step_up`")
            if step_up not in STEP_UPS:
                raise self.fail(node, f"`step_up` must be one of {', '.join(STEP_UPS)}, got {step_up!r}")
        require_slack_user = self.intake(top["intake"]) if "intake" in top else False
        return PolicySpec(
            stages=stages,
            requesters=requesters,
            step_up=step_up,
            source=self.path,
            intake_require_slack_user=require_slack_user,
        )

    def intake(self, node: Node) -> bool:
        """`intake: {require_slack_user: true|false}`: whether an intake request must name the
        Slack user it acts for. Only YAML's own `true`/`false`, never `yes`, `on` or a quoted text."""
        fields = self.mapping(node, "`intake`", _INTAKE_KEYS)
        if not fields:
            raise self.fail(node, f"`intake` must be a mapping with the keys {', '.join(_INTAKE_KEYS)}")
        value = fields["require_slack_user"]
        text = str(getattr(value, "value", "?"))
        if not isinstance(value, ScalarNode) or value.tag != _BOOL or text.lower() not in ("true", "false"):
            raise self.fail(value, f"`require_slack_user` of `intake` must be true or false, got {text!r}")
        return text.lower() == "true"

    def plain(self, node: Node) -> None:
        """Nothing but YAML's own types: a tag like `!!python/object` is refused, never built."""
        if not node.tag.startswith("tag:yaml.org,2002:") or node.tag.startswith("tag:yaml.org,2002:python"):
            raise self.fail(node, f"the tag {node.tag!r} is not allowed in a policy file")
        if isinstance(node, SequenceNode):
            for item in node.value:
                self.plain(item)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                self.plain(key)
                self.plain(value)

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping with the keys {', '.join(allowed)}")
        out: dict[str, Node] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, ScalarNode) else None
            if name not in allowed:
                raise self.fail(key, f"unknown key {name!r} in {what} (expected {', '.join(allowed)})")
            if name in out:
                raise self.fail(key, f"`{name}` is given twice in {what}")
            out[name] = value
        return out

    def text(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _STR or not str(node.value).strip():
            raise self.fail(node, f"{what} must be a non-empty text")
        return str(node.value).strip()

    def ids(self, node: Node, what: str) -> tuple[str, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(
                node, f"{what} must be a non-empty list of Slack user ids (U…/W…) or user groups (S…)"
            )
        out: list[str] = []
        for item in node.value:
            value = item.value if isinstance(item, ScalarNode) else None
            if not isinstance(value, str) or not (SLACK_USER_ID.match(value) or _is_group(value)):
                raise self.fail(
                    item, f"{value!r} in {what} is not a Slack user id (U…/W…) or a user group id (S…)"
                )
            if value in out:
                raise self.fail(item, f"{value} is listed twice in {what}")
            out.append(value)
        return tuple(out)

    def stages(self, node: Node) -> tuple[Stage, ...]:
        if not isinstance(node, SequenceNode) or not node.value:
            raise self.fail(
                node, "`approvals` must be a non-empty list of stages (each with `from:` and `count:`)"
            )
        stages: list[Stage] = []
        for number, item in enumerate(node.value, 1):
            what = f"stage {number}"
            fields = self.mapping(item, what, _STAGE_KEYS)
            for key in ("from", "count"):
                if key not in fields:
                    raise self.fail(item, f"{what} has no `{key}:`")
            members = self.ids(fields["from"], f"`from` of {what}")
            count = self.count(fields["count"], what)
            users = [m for m in members if not _is_group(m)]
            if len(users) == len(members) and count > len(users):
                raise self.fail(
                    fields["count"],
                    f"{what} needs {count} approvals but lists only {len(users)} "
                    f"{'person' if len(users) == 1 else 'people'}: it could never be met",
                )
            name = self.text(fields["name"], f"`name` of {what}") if "name" in fields else None
            if name is not None and len(name) > MAX_NAME:
                raise self.fail(fields["name"], f"`name` of {what} is longer than {MAX_NAME} characters")
            stages.append(Stage(count=count, members=members, name=name))
        self.fillable(node, stages)
        return tuple(stages)

    def count(self, node: Node, what: str) -> int:
        if not isinstance(node, ScalarNode) or node.tag != _INT:
            raise self.fail(
                node, f"`count` of {what} must be a whole number, got {getattr(node, 'value', '?')!r}"
            )
        count = int(node.value)
        if not 1 <= count <= MAX_COUNT:
            raise self.fail(node, f"`count` of {what} must be between 1 and {MAX_COUNT}, got {count}")
        return count

    def fillable(self, node: SequenceNode, stages: list[Stage]) -> None:
        """The stages given as fixed lists only must be fillable together by distinct people (a
        person counts once): else no request could ever be approved."""
        fixed = [i for i, s in enumerate(stages) if not s.groups]
        people = {m for i in fixed for m in stages[i].members}
        eligible = [
            (p, tuple(k for k, i in enumerate(fixed) if p in stages[i].members)) for p in sorted(people)
        ]
        seats = sum(stages[i].count for i in fixed)
        if len(assign(eligible, [stages[i].count for i in fixed])) < seats:
            numbers = ", ".join(str(i + 1) for i in fixed)
            raise self.fail(
                node,
                f"stages {numbers} can never all be met: they need {seats} distinct people "
                "and a person counts once in total",
            )
