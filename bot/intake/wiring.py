"""The intake API wired onto a Runtime (bot/runtime/bootstrap.py calls `wire_intake`): its
rules, its HTTP secret and its callback loop, when SFOX_INTAKE_SECRET is set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.config import ConfigError
from bot.intake.api import IntakeApi
from bot.intake.callbacks import CallbackLoop, Callbacks
from bot.intake.replay import SeenSignatures
from bot.slack.dms import card_permalink

if TYPE_CHECKING:
    from bot.runtime.bootstrap import Runtime


@dataclass
class Intake:
    api: IntakeApi
    callbacks: CallbackLoop
    seen: SeenSignatures
    secret: str = field(repr=False)


def wire_intake(runtime: Runtime) -> None:
    """Set `runtime.intake` (None: the API is off, and answers 404)."""
    settings = runtime.settings
    if not settings.intake_secret:
        return
    if not settings.default_channel:
        raise ConfigError(
            "SFOX_DEFAULT_CHANNEL", "is required when SFOX_INTAKE_SECRET is set (the cards go there)"
        )
    workflow = runtime.workflow
    api = IntakeApi(
        runtime.store,
        runtime.commands,
        workflow.policy,
        settings.default_channel,
        lambda record: card_permalink(runtime.slack, record),
        lambda: workflow.now(),
        callback_hosts=settings.intake_callback_hosts,
    )
    callbacks = Callbacks(
        runtime.store,
        settings.intake_secret,
        lambda: workflow.now(),
        hosts=settings.intake_callback_hosts,
        max_attempts=settings.intake_callback_attempts,
    )
    loop = CallbackLoop(callbacks)
    runtime.intake = Intake(api, loop, SeenSignatures(runtime.store), settings.intake_secret)
