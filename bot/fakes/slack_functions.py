"""The fake Slack's custom functions (Workflow Builder steps): executions started by the driver's
`function_executed`, and `functions.completeSuccess` / `functions.completeError` with Slack's
checks. A testing aid.

- An execution is completed once: a completion of one Slack does not know is
  `function_execution_not_found`, of one completed already `execution_not_in_running_state`.
- `outputs` must match the function's declared `output_parameters` (every required one given,
  nothing undeclared, each of its type): else `parameter_validation_failed`.
- The token: the app's bot token, or the execution's own workflow token (`xwfp-…`, sent in the
  event as `bot_access_token`) while it lives (`WORKFLOW_TOKEN_SECONDS` on the fake's clock, which
  a test may move): a dead one is `token_expired`, any other `invalid_auth`.
- Who ran it: an execution started by a person (`ran_by`) carries, in every input the function
  declares of type `slack#/types/interactivity`, Slack's interactivity object as its reference
  shows it: `{"interactor": {"id": "U…", "secret": "…"}, "interactivity_pointer": "…"}`. Slack
  fills it, not the workflow's author; an input given explicitly is sent as given instead (a
  test's malformed one).

Refusals other than `execution_not_in_running_state` (which a bot may meet honestly, after a
crash between Slack's answer and its own record) go to the fake's `refusals`.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.fakes.slack_strict import Refusal

METHODS = frozenset({"functions.completeSuccess", "functions.completeError"})
INTERACTIVITY = "slack#/types/interactivity"
WORKFLOW_TOKEN_SECONDS = 15 * 60
ALREADY_DONE = "execution_not_in_running_state"
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "slack#/types/user_id": lambda v: isinstance(v, str) and bool(re.fullmatch(r"[UW][A-Z0-9]+", v)),
    "slack#/types/channel_id": lambda v: isinstance(v, str) and bool(re.fullmatch(r"[CGD][A-Z0-9]+", v)),
}


@dataclass
class Execution:
    id: str
    callback_id: str
    token: str
    token_expires: float
    state: str = "running"  # "completed" or "failed" once Slack took a completion
    outputs: dict[str, Any] | None = None
    error: str | None = None
    # Slack's interactivity object for the person who ran it (None: nobody did, or not known).
    interactivity: dict[str, Any] | None = None


@dataclass
class Functions:
    clock: Callable[[], float]
    bot_token: str
    refusals: list[Refusal]
    # The app's functions as its manifest declares them: callback_id → the manifest's entry.
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)
    executions: dict[str, Execution] = field(default_factory=dict)
    # Every completion Slack took: (execution id, method, outputs or error).
    completions: list[tuple[str, str, Any]] = field(default_factory=list)
    _n: Any = field(default_factory=lambda: itertools.count(1))

    def start(self, callback_id: str, ran_by: str | None = None) -> Execution:
        """A workflow runs the step now: a new execution and its workflow token; `ran_by`, the
        person who started it (the interactivity Slack hands the step)."""
        n = next(self._n)
        execution = Execution(
            f"Fx{n:010d}", callback_id, f"xwfp-fake-{n}-{n * 7919:08x}", self.clock() + WORKFLOW_TOKEN_SECONDS
        )
        if ran_by is not None:
            execution.interactivity = {
                "interactor": {"id": ran_by, "secret": secrets.token_urlsafe(60)},
                "interactivity_pointer": f"{n:013d}.{int(self.clock() * 1000):013d}.{secrets.token_hex(16)}",
            }
        self.executions[execution.id] = execution
        return execution

    def answer(self, method: str, args: dict[str, Any], auth: str | None) -> dict[str, Any]:
        execution = self.executions.get(str(args.get("function_execution_id") or ""))
        error = self._auth_error(auth, execution)
        if error is None and execution is None:
            error = "function_execution_not_found"
        elif error is None and execution is not None and execution.state != "running":
            return {"ok": False, "error": ALREADY_DONE}
        if error is None and execution is not None:
            if method == "functions.completeSuccess":
                outputs = args.get("outputs")
                outputs = json.loads(outputs) if isinstance(outputs, str) else outputs
                error = self._outputs_error(execution.callback_id, outputs)
                if error is None:
                    execution.state, execution.outputs = "completed", outputs
                    self.completions.append((execution.id, method, outputs))
            elif not str(args.get("error") or ""):
                error = "invalid_arguments"
            else:
                execution.state, execution.error = "failed", str(args["error"])
                self.completions.append((execution.id, method, execution.error))
        if error is not None:
            self.refusals.append(Refusal(method, error))
            return {"ok": False, "error": error}
        return {"ok": True}

    def _auth_error(self, auth: str | None, execution: Execution | None) -> str | None:
        token = (auth or "").removeprefix("Bearer ")
        if token == self.bot_token:
            return None
        if execution is not None and token == execution.token:
            return "token_expired" if self.clock() >= execution.token_expires else None
        return "invalid_auth"

    def _outputs_error(self, callback_id: str, outputs: Any) -> str | None:
        params = (self.declared.get(callback_id) or {}).get("output_parameters") or {}
        properties, required = params.get("properties") or {}, params.get("required") or []
        if not isinstance(outputs, dict) or any(name not in outputs for name in required):
            return "parameter_validation_failed"
        for name, value in outputs.items():
            declared = properties.get(name)
            check = _TYPES.get(str((declared or {}).get("type")))
            if declared is None or check is None or not check(value):
                return "parameter_validation_failed"
        return None

    def executed_event(
        self, callback_id: str, inputs: dict[str, Any], execution_id: str | None, ran_by: str | None = None
    ) -> tuple[Execution, dict[str, Any]]:
        """A `function_executed` event (inside its event_callback) for a new execution run by
        `ran_by`, or again for `execution_id`, field for field as Slack's documented example."""
        new = execution_id is None
        execution = self.start(callback_id, ran_by) if new else self.executions[str(execution_id)]
        sent = dict(inputs)
        if execution.interactivity is not None:
            for name in self.inputs_of_type(callback_id, INTERACTIVITY):
                sent.setdefault(name, execution.interactivity)
        event = {
            "type": "function_executed",
            "function": self.event_function(callback_id),
            "inputs": sent,
            "function_execution_id": execution.id,
            "workflow_execution_id": "Wx" + execution.id[2:],
            "event_ts": f"{time.time():.6f}",
            "bot_access_token": execution.token,
        }
        return execution, event

    def inputs_of_type(self, callback_id: str, type_: str) -> list[str]:
        """The names of the function's declared inputs of `type_`."""
        declared = (self.declared.get(callback_id) or {}).get("input_parameters") or {}
        return [
            name for name, spec in (declared.get("properties") or {}).items() if spec.get("type") == type_
        ]

    def event_function(self, callback_id: str) -> dict[str, Any]:
        """The `function` object of a `function_executed` event, as Slack's example shows it: the
        manifest's parameters as lists, each with `is_required`."""
        declared = self.declared[callback_id]

        def params(part: dict[str, Any]) -> list[dict[str, Any]]:
            required = set(part.get("required") or [])
            return [
                {
                    "type": spec.get("type"),
                    "name": name,
                    "description": spec.get("description", ""),
                    "title": spec.get("title", name),
                    "is_required": name in required,
                }
                for name, spec in (part.get("properties") or {}).items()
            ]

        return {
            "id": "Fn0000000001",
            "callback_id": callback_id,
            "title": declared.get("title", callback_id),
            "description": declared.get("description", ""),
            "type": "app",
            "input_parameters": params(declared.get("input_parameters") or {}),
            "output_parameters": params(declared.get("output_parameters") or {}),
            "app_id": "A1",
            "date_created": 1694727597,
            "date_updated": 1698947481,
            "date_deleted": 0,
        }
