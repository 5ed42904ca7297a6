"""Rows read and written through ``integrations.sql_rows`` are the rows the ORM reads
and writes: every field, converted as the ORM converts it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.core import crypto
from integrations.errors import AuditEventImmutableError
from integrations.models import AuditEvent, Connection, UserOAuthClient
from integrations.sql_rows import column, fetch, insert, param, quote, selected
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db


def values(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def read(model, pk):
    table = quote(model._meta.db_table)
    rows = fetch(
        f"SELECT {selected(model).sql} FROM {table} WHERE {column(model, 'id')} = %s",
        [pk],
    )
    return selected(model).build(rows[0])


def test_a_row_read_in_sql_is_the_instance_the_orm_reads(alice, settings):
    client = UserOAuthClient.objects.create(
        user=alice,
        provider="google",
        client_id="own-client",
        client_secret_encrypted=crypto.encrypt("own-secret", keys=settings.INTEGRATIONS_TOKEN_KEYS),
    )
    conn = ConnectionFactory.create(
        user=alice,
        oauth_client=client,
        is_default=True,
        last_used_at=timezone.now(),
        scopes=["openid", "email", "https://www.googleapis.com/auth/gmail.send"],
    )
    got = read(Connection, conn.pk)
    assert isinstance(got, Connection)
    assert not got._state.adding
    assert values(got) == values(Connection.objects.get(pk=conn.pk))
    assert got.scopes == ["openid", "email", "https://www.googleapis.com/auth/gmail.send"]
    assert got.is_default is True
    assert got.expires_at is not None and got.expires_at.tzinfo is not None
    assert values(read(UserOAuthClient, client.pk)) == values(
        UserOAuthClient.objects.get(pk=client.pk)
    )


def test_an_outer_join_that_found_nothing_is_none():
    width = selected(UserOAuthClient).width
    assert selected(UserOAuthClient).build([None] * width) is None


def test_insert_writes_what_save_writes(alice):
    detail = {"app": "acme/digest", "keys": ["FAL_KEY"], "nested": {"n": 1}}
    fast = insert(
        AuditEvent(kind=AuditEvent.Kind.RUN_ENVIRONMENT, provider="", user=alice, detail=detail)
    )
    slow = AuditEvent.objects.create(
        kind=AuditEvent.Kind.RUN_ENVIRONMENT, provider="", user=alice, detail=detail
    )
    assert fast.pk is not None and fast.pk != slow.pk
    assert fast.created_at is not None  # auto_now_add, as save() sets it
    stored = AuditEvent.objects.get(pk=fast.pk)
    assert stored.created_at == fast.created_at
    ignored = {"id", "created_at"}
    assert {k: v for k, v in values(stored).items() if k not in ignored} == {
        k: v for k, v in values(AuditEvent.objects.get(pk=slow.pk)).items() if k not in ignored
    }
    assert stored.detail == detail
    # Written: no longer a new row, so the model's append-only rule holds for it too.
    with pytest.raises(AuditEventImmutableError):
        fast.save()


def test_a_datetime_parameter_compares_as_the_orms_does(alice):
    conn = ConnectionFactory.create(user=alice)
    assert conn.expires_at is not None
    later = conn.expires_at + timedelta(seconds=1)
    sql = (
        f"SELECT {column(Connection, 'id')} FROM {quote(Connection._meta.db_table)} "
        f"WHERE {column(Connection, 'expires_at')} < %s"
    )
    assert fetch(sql, [param(Connection, "expires_at", later)]) == [(conn.pk,)]
    assert fetch(sql, [param(Connection, "expires_at", conn.expires_at)]) == []
