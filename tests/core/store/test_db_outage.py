"""The connection options that make a PostgreSQL server that is away fail fast."""

from __future__ import annotations

import sqlalchemy as sa

from opsconsole.core.store.db import CONNECT_TIMEOUT, server_connect_args


def test_a_postgresql_store_gets_a_connect_timeout_and_keepalives() -> None:
    args = server_connect_args(sa.make_url("postgresql+psycopg://ops@db1/opsconsole"))
    assert args["connect_timeout"] == CONNECT_TIMEOUT
    assert args["keepalives"] == 1
    assert args["keepalives_idle"] + args["keepalives_interval"] * args["keepalives_count"] <= 60


def test_what_the_url_sets_wins() -> None:
    url = "postgresql+psycopg://ops@db1/opsconsole?connect_timeout=3&keepalives=0"
    args = server_connect_args(sa.make_url(url))
    assert "connect_timeout" not in args and "keepalives" not in args  # libpq reads the URL's


def test_other_stores_get_none() -> None:
    assert server_connect_args(sa.make_url("sqlite:///x.db")) == {}
