from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete


def _forget_authorizations(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted app's name may be taken again (by another publisher): its users'
    allowances go with it (integrations names apps by slug, without a foreign key)."""
    from integrations.app_authorization import app_authorizations_forget

    app_authorizations_forget(app=instance.slug)


class AppsRegistryConfig(AppConfig):
    name = "apps_registry"
    verbose_name = "Apps"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_delete.connect(
            _forget_authorizations, sender="apps_registry.App", dispatch_uid="forget_app_auth"
        )
