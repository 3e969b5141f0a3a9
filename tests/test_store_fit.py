"""sFOX's free text about a user is kept up to its column and clipped past it (bot/store/fit.py):
PostgreSQL refuses a longer value, and with it the whole request. The end-to-end case is
tests/test_strict_fake.py's largest card, on PostgreSQL."""

from bot.store.fit import ELLIPSIS, clip, clipped
from bot.store.schema import requests


def test_a_value_that_fits_is_kept_whole_and_a_longer_one_ends_in_an_ellipsis():
    length = requests.c.target_name.type.length
    assert clip("target_name", "a" * length) == "a" * length
    longer = clip("target_name", "b" * (length + 1))
    assert longer == "b" * (length - 1) + ELLIPSIS and len(longer) == length
    assert clip("target_status", None) is None


def test_only_sfoxs_text_is_clipped():
    long = "x" * 1000
    values = clipped({"reason": long, "target_email": long, "target_status": long})
    assert values["reason"] == long  # the requester's own words: checked before, kept whole
    assert len(values["target_email"]) == requests.c.target_email.type.length
    assert len(values["target_status"]) == requests.c.target_status.type.length
