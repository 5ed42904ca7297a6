from django.apps import AppConfig


class SandboxConfig(AppConfig):
    """The sandbox: a built-in OAuth 2.0 server that plays Google (development, tests)."""

    name = "integrations.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox (plays Google)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .receivers import sandbox_client_on_migrate

        # Only once per migrate, after every app's tables (django-oauth-toolkit's too) exist.
        post_migrate.connect(sandbox_client_on_migrate, sender=self)
