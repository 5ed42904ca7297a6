from django.apps import AppConfig


class AppsRegistryConfig(AppConfig):
    name = "apps_registry"
    verbose_name = "Apps"
    default_auto_field = "django.db.models.BigAutoField"
