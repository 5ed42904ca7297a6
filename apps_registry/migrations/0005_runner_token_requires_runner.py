"""Runner tokens without a runner are none: the runner becomes required, and the token's
own name (now its runner's) goes. After ``0004``, which gave every token a runner; a
migration of its own, since PostgreSQL refuses to alter a table in the transaction that
has just updated its rows (pending trigger events)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apps_registry', '0004_namespaces_and_runner_scopes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='runnertoken',
            name='runner',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='tokens', to='apps_registry.runner'),
        ),
        # A default first, so that unapplying (which adds the column back) can fill the
        # existing rows; 0004's reverse then writes each token's runner name into it.
        migrations.AlterField(
            model_name='runnertoken',
            name='name',
            field=models.CharField(max_length=100, default=''),
        ),
        migrations.RemoveField(
            model_name='runnertoken',
            name='name',
        ),
    ]
