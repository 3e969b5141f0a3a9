"""The PostgreSQL pool checks a connection that sat idle before handing it out (bot/store/engine.py
`_ping_when_idle`): one the server cut meanwhile (a restart, a failover) is replaced, and the
statement that follows never sees it."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bot.store import engine as store_engine
from bot.store.engine import make_engine


@pytest.mark.postgres
@pytest.mark.parametrize("idle", ["idle past the limit", "back a moment ago"])
def test_a_pooled_connection_the_server_cut_while_idle_is_replaced_before_use(
    postgres_url, monkeypatch, idle
):
    engine = make_engine(postgres_url)
    other = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            cut = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with other.begin() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": cut}).scalar_one()
        if idle == "idle past the limit":
            monkeypatch.setattr(store_engine, "PING_IDLE_SECONDS", 0.0)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != cut
        else:
            # Not checked (the cost a burst does not pay): the one statement that finds it fails,
            # and the pool, told the connection is gone, opens a new one for the next.
            monkeypatch.setattr(store_engine, "PING_IDLE_SECONDS", 3600.0)
            with pytest.raises(OperationalError), engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != cut
    finally:
        engine.dispose()
        other.dispose()
