"""No token value in the database in clear, in the admin's HTML or in the logs."""

from __future__ import annotations

import logging

import pytest
import responses
from django.db import connection as db
from django.urls import reverse

from integrations.models import Connection

from .fakes import FakeGoogle
from .test_flows import finish, start

pytestmark = pytest.mark.django_db


def dump_every_table(exclude_prefixes: tuple[str, ...] = ()) -> str:
    """Every row of every table, as text (BinaryField columns included, as bytes).

    ``exclude_prefixes`` leaves out tables of the sandbox, which plays the provider and
    keeps what it issued, as a provider does."""
    chunks = []
    with db.cursor() as cur:
        for table in db.introspection.table_names(cur):
            if table.startswith(exclude_prefixes):
                continue
            cur.execute(f"SELECT * FROM {db.ops.quote_name(table)}")
            for row in cur.fetchall():
                chunks.append(
                    repr(
                        [
                            bytes(v).decode("latin-1") if isinstance(v, memoryview | bytes) else v
                            for v in row
                        ]
                    )
                )
    return "\n".join(chunks)


def test_no_token_in_db_admin_or_logs(client, admin_user, alice, caplog):
    caplog.set_level(logging.DEBUG)
    client.force_login(alice)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        google = FakeGoogle(rsps)
        finish(client, google, start(client, ["google.sheets.readonly"]))
        conn = Connection.objects.get()
        finish(
            client,
            google,
            start(
                client,
                ["google.gmail.send"],
                url=reverse("integrations:add_permissions", kwargs={"id": conn.pk}),
            ),
        )
        issued = list(google.issued)
        assert len(issued) == 4

        dump = dump_every_table()
        client.force_login(admin_user)
        admin_html = "".join(
            client.get(url).content.decode()
            for url in (
                reverse("admin:integrations_connection_changelist"),
                reverse("admin:integrations_connection_change", args=[conn.pk]),
                reverse("admin:integrations_auditevent_changelist"),
            )
        )
        client.force_login(alice)
        client.post(reverse("integrations:disconnect", kwargs={"id": conn.pk}))
        assert google.revoked

    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "Google" in admin_html and conn.account_email in admin_html
    for token in issued:
        assert token not in dump
        assert token not in admin_html
        assert token not in logs
        assert token not in repr(conn) and token not in str(conn)
