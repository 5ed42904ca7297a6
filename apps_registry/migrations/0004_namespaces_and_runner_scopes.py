"""Namespaces owned by their publisher, and runners with scoped tokens (issue 11, 2-3).

Data: each namespace of the existing apps goes to the uploader of its earliest version
(or, with no known uploader, the owner of its oldest app); those among the names
reserved by default stay reserved (their owner keeps uploading there). Each existing
runner token gets a runner of its name with an explicit all-namespaces scope, so that
it keeps working as it did.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# As ``config.settings.base.APPS_RESERVED_NAMESPACES`` defaults them, copied: a
# migration must not change when the setting does.
RESERVED_BY_DEFAULT = frozenset(
    {"google", "x", "discord", "gcp", "admin", "api", "staff", "www", "apps", "platform"}
)


def assign_namespaces(apps, schema_editor):
    App = apps.get_model("apps_registry", "App")
    ManifestVersion = apps.get_model("apps_registry", "ManifestVersion")
    Namespace = apps.get_model("apps_registry", "Namespace")
    names = App.objects.values_list("namespace", flat=True).distinct().order_by("namespace")
    for name in list(names):
        if Namespace.objects.filter(name=name).exists():
            continue
        first = (
            ManifestVersion.objects.filter(app__namespace=name, uploaded_by__isnull=False)
            .order_by("created_at", "id")
            .values_list("uploaded_by_id", flat=True)
            .first()
        )
        if first is None:
            first = (
                App.objects.filter(namespace=name)
                .order_by("created_at", "id")
                .values_list("owner_id", flat=True)
                .first()
            )
        namespace = Namespace.objects.create(
            name=name, created_by_id=first, reserved=name in RESERVED_BY_DEFAULT
        )
        if first is not None:
            namespace.owners.add(first)


def give_tokens_runners(apps, schema_editor):
    Runner = apps.get_model("apps_registry", "Runner")
    RunnerToken = apps.get_model("apps_registry", "RunnerToken")
    for token in RunnerToken.objects.filter(runner__isnull=True).order_by("created_at", "id"):
        runner, _ = Runner.objects.get_or_create(
            name=token.name,
            defaults={"all_namespaces": True, "created_by_id": token.created_by_id},
        )
        token.runner = runner
        token.save(update_fields=["runner"])


def runners_back_to_names(apps, schema_editor):
    RunnerToken = apps.get_model("apps_registry", "RunnerToken")
    for token in RunnerToken.objects.select_related("runner"):
        token.name = token.runner.name
        token.save(update_fields=["name"])


class Migration(migrations.Migration):

    dependencies = [
        ('apps_registry', '0003_user_email_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='runnertoken',
            name='expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='Namespace',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=64, unique=True)),
                ('reserved', models.BooleanField(default=False, help_text='Only staff upload here, and assign the owners.')),
                ('verified', models.BooleanField(default=False, help_text='Staff vouch for the publisher: the app pages show a mark.')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('owners', models.ManyToManyField(blank=True, related_name='owned_namespaces', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='Runner',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('all_namespaces', models.BooleanField(default=False)),
                ('namespaces', models.JSONField(blank=True, default=list)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['name'],
            },
        ),
        migrations.AddField(
            model_name='runnertoken',
            name='runner',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.PROTECT, related_name='tokens', to='apps_registry.runner'),
        ),
        migrations.RunPython(assign_namespaces, migrations.RunPython.noop),
        migrations.RunPython(give_tokens_runners, runners_back_to_names),
    ]
