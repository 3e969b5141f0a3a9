"""SFOX_ALLOWED_CHANNELS: the command works only where ops said it may, and says where that is."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_settings
from tests.conftest import ALICE, BOB
from tests.helpers import open_request, wait_status

OPS, AUDIT, ELSEWHERE = "C0123TEST", "G0AUDIT01", "C0RANDOM1"


def test_refused_elsewhere_with_the_allowed_channels_named(make_bot):
    bot = make_bot(SFOX_ALLOWED_CHANNELS=f"{OPS},{AUDIT}")
    response = bot.driver.command(ALICE, "client_1 leaving", channel_id=ELSEWHERE)
    assert response.status_code == 200
    text = response.json()["text"]
    assert response.json()["response_type"] == "ephemeral"
    assert f"<#{OPS}>" in text and f"<#{AUDIT}>" in text
    assert "can only be used in" in text
    assert bot.slack.cards() == [] and bot.sfox.requests() == []
    assert list(bot.store.history()) == []


def test_allowed_channel_works_end_to_end(make_bot):
    bot = make_bot(SFOX_ALLOWED_CHANNELS=f"{OPS},{AUDIT}")
    record, card = open_request(bot, ALICE, "client_1")  # the driver's channel is OPS
    assert card.channel == OPS
    bot.driver.click(BOB, "sfox_approve", str(record.id), card.ts)
    wait_status(bot, record.id, "succeeded")


def test_without_the_setting_every_channel_is_allowed(make_bot):
    bot = make_bot()
    bot.driver.command(ALICE, "client_1", channel_id=ELSEWHERE)
    card = bot.slack.wait_for(lambda: bot.slack.cards())[0]
    assert card.channel == ELSEWHERE


def test_malformed_channel_ids_are_rejected_by_name():
    with pytest.raises(ConfigError) as err:
        load_settings({"SFOX_ALLOWED_CHANNELS": "C0123TEST, #ops"})
    assert err.value.setting == "SFOX_ALLOWED_CHANNELS" and "'#ops'" in err.value.problem
