"""The audit log is append-only in the database (issue 11, point 7): on PostgreSQL a
trigger (migration 0011) refuses every UPDATE and DELETE of an audit row, however sent,
except the one a user's deletion makes (``user_id`` set to NULL, nothing else)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from integrations.audit import audit_record
from integrations.errors import AuditEventImmutableError
from integrations.models import AuditEvent

pytestmark = pytest.mark.django_db

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the append-only trigger is PostgreSQL's"
)

TABLE = AuditEvent._meta.db_table


@pytest.fixture
def event(alice):
    return audit_record(
        kind=AuditEvent.Kind.SECRET_SET, provider="secrets", user=alice, account="FAL_KEY"
    )


def refused(action) -> str:
    with pytest.raises(DatabaseError) as error, transaction.atomic():
        action()
    return str(error.value)


def test_the_orm_row_methods_refuse_changes_on_every_database(event):
    event.ok = False
    with pytest.raises(AuditEventImmutableError):
        event.save()
    with pytest.raises(AuditEventImmutableError):
        event.delete()


@needs_postgres
def test_inserts_work_and_rows_read_back(event):
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (created_at, provider, account, kind, ok, error_code, detail)"
            " VALUES (now(), 'google', '', 'connect', true, '', '{}')"
        )
    assert AuditEvent.objects.count() == 2


@needs_postgres
def test_queryset_update_and_delete_are_refused(event):
    message = refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(ok=False))
    assert "the audit log is append-only: UPDATE" in message
    assert "append-only: DELETE" in refused(lambda: AuditEvent.objects.filter(pk=event.pk).delete())
    assert AuditEvent.objects.get(pk=event.pk).ok


@needs_postgres
def test_raw_sql_update_and_delete_are_refused(event):
    def raw(sql: str):
        def run() -> None:
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])

        return run

    assert "UPDATE" in refused(raw(f"UPDATE {TABLE} SET error_code = 'x' WHERE id = %s"))
    assert "DELETE" in refused(raw(f"DELETE FROM {TABLE} WHERE id = %s"))
    # Clearing the user is let through only when nothing else changes with it.
    assert "UPDATE" in refused(
        raw(f"UPDATE {TABLE} SET user_id = NULL, account = '' WHERE id = %s")
    )
    # And a cleared user is not set again.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET user_id = NULL WHERE id = %s", [event.pk])
    assert "UPDATE" in refused(raw(f"UPDATE {TABLE} SET user_id = {event.user_id} WHERE id = %s"))
    assert AuditEvent.objects.filter(pk=event.pk, account="FAL_KEY", error_code="").exists()


@needs_postgres
def test_deleting_a_user_keeps_their_events_without_them(event, alice):
    alice.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert kept.user_id is None and kept.account == "FAL_KEY" and kept.kind == "secret_set"


@needs_postgres
def test_truncate_still_works(event):
    # The test framework's flush (and the benchmarks' resets) truncate the table.
    with connection.cursor() as cursor:
        # The user foreign key's deferred check, due at commit, would hold TRUNCATE up.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {TABLE}")
    assert not AuditEvent.objects.exists()
