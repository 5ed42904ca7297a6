from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from integrations import checks  # noqa: F401  registers the checks
        from integrations.models import ProviderDefinition
        from integrations.providers import registry

        def changed(**kwargs: object) -> None:
            registry.definitions_changed()

        post_save.connect(changed, sender=ProviderDefinition, weak=False)
        post_delete.connect(changed, sender=ProviderDefinition, weak=False)
