"""where_given: a filter the caller sent narrows the select, one left out or empty does not."""

import sqlalchemy as sa

from citystat_common.filters import where_given

requests = sa.table("requests", sa.column("status"), sa.column("channel"), sa.column("service_code"))


def test_only_the_filters_given_narrow_the_select():
    stmt = where_given(sa.select(requests.c.status), (requests.c.status, "open"), (requests.c.channel, None),
                       (requests.c.service_code, ""))
    sql = str(stmt.compile(compile_kwargs={"literal_binds": True}))
    assert "WHERE requests.status = 'open'" in sql
    assert "channel =" not in sql and "service_code =" not in sql


def test_every_filter_given_is_applied_together():
    stmt = where_given(sa.select(requests.c.status), (requests.c.status, "open"), (requests.c.channel, "phone"))
    sql = str(stmt.compile(compile_kwargs={"literal_binds": True}))
    assert "requests.status = 'open' AND requests.channel = 'phone'" in sql


def test_no_filter_given_leaves_the_select_as_it_was():
    stmt = sa.select(requests.c.status)
    assert str(where_given(stmt, (requests.c.status, None))) == str(stmt)
