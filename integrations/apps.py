from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_delete, post_save

        # The checks, and the tasks: the web process enqueues the reconnect email by its
        # name, which Celery knows once the module is imported (the worker's autodiscovery
        # does not run in the web server).
        from integrations import checks, tasks  # noqa: F401
        from integrations.models import ProviderDefinition
        from integrations.providers import registry
        from integrations.time_zone import remember_at_login

        def changed(**kwargs: object) -> None:
            registry.definitions_changed()

        post_save.connect(changed, sender=ProviderDefinition, weak=False)
        post_delete.connect(changed, sender=ProviderDefinition, weak=False)
        user_logged_in.connect(remember_at_login, weak=False)
