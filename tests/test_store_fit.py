"""sFOX's free text about a user is kept up to its column and clipped past it (bot/store/fit.py):
PostgreSQL refuses a longer value, and with it the whole request. The end-to-end case is
tests/test_strict_fake.py's largest card, on PostgreSQL."""

from datetime import UTC, datetime, timedelta

from bot.store import migrate
from bot.store.batches import BatchStore
from bot.store.db import Store
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


def test_a_batch_user_with_a_long_name_is_recorded_on_either_engine(database_url):
    """The batch's insert clips too: on PostgreSQL an unclipped name refused the whole batch."""
    store = Store.from_url(database_url)
    migrate.upgrade(store.engine)
    long = "n" * 500
    batch_id = BatchStore(store).create(
        requested_by="UALICE01",
        channel_id="C0123TEST",
        reason="cohort closed",
        required_approvals=1,
        now=datetime.now(UTC),
        ttl=timedelta(hours=1),
        users=[
            {"sfox_user_id": "cohort_1", "target_name": long, "target_email": long, "target_status": long}
        ],
        excluded={},
        balances_skipped=False,
    )
    (record,) = store.history(batch_id=batch_id)
    length = requests.c.target_name.type.length
    assert record.target_name == "n" * (length - 1) + ELLIPSIS
    assert len(record.target_status) == requests.c.target_status.type.length
    store.close()
