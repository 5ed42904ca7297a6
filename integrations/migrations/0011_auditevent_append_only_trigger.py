"""The audit log is append-only in the database too (issue 11, point 7): on PostgreSQL a
trigger refuses every UPDATE and DELETE of an audit row, whoever sends it (the ORM's
``QuerySet.update()``/``.delete()``, raw SQL, a psql session). The model's ``save()`` and
``delete()`` guards cover only the ORM's row methods.

One UPDATE is let through: the one that sets ``user_id`` to NULL and changes nothing else,
which is how a user's deletion reaches their events (``on_delete=SET_NULL``): the events
stay, without the person. TRUNCATE fires no row trigger: the test framework's flush and
the benchmarks' resets still work (a table owner can always drop the trigger anyway; this
is against mistakes and the application's own credentials misused, not against the DBA).

SQLite gets no trigger: Django's test flush deletes rows there (SQLite has no TRUNCATE).
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION integrations_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
       AND to_jsonb(NEW) - 'user_id' = to_jsonb(OLD) - 'user_id' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % of an audit event refused', TG_OP
        USING HINT = 'Audit events are written once and never changed or deleted.';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS integrations_auditevent_append_only ON integrations_auditevent;
CREATE TRIGGER integrations_auditevent_append_only
    BEFORE UPDATE OR DELETE ON integrations_auditevent
    FOR EACH ROW EXECUTE FUNCTION integrations_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS integrations_auditevent_append_only ON integrations_auditevent;
DROP FUNCTION IF EXISTS integrations_auditevent_append_only();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            # No parameters: the SQL's % are PL/pgSQL's, not placeholders.
            schema_editor.execute(sql, None)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0010_connection_last_verified"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP), elidable=False),
    ]
