"""Signal receivers: each makes one service call."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections


def sandbox_client_on_migrate(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """Leave a working sandbox client after ``migrate`` (and after a test-database flush)."""
    from oauth2_provider.models import get_application_model

    from .services import google_callback_uri, sandbox_client_ensure

    if using != DEFAULT_DB_ALIAS:
        return
    # `migrate sandbox` alone need not have created django-oauth-toolkit's tables.
    table = get_application_model()._meta.db_table
    if table not in connections[using].introspection.table_names():
        return
    sandbox_client_ensure(redirect_uris=[google_callback_uri(site_url=settings.SITE_URL)])
