"""An index for runners that name a user by email (``email__iexact``).

On PostgreSQL Django compiles ``email__iexact`` to ``UPPER("auth_user"."email"::text) =
UPPER(%s)``, which no index of ``auth_user`` serves: each lookup scanned the whole
table (docs/benchmarks.md, run environment, finding 4). ``auth_user`` is Django's, so
the index is made here, for PostgreSQL only; SQLite is for development.
"""

from django.db import migrations

INDEX = "apps_registry_auth_user_upper_email_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {INDEX} ON auth_user (UPPER("email"::text))'
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("apps_registry", "0002_runner_tokens"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create, drop)]
