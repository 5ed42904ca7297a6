"""Per-app authorization for tests that are about something else: allow an app
everything its current version declares, on every connection the user has now, through
the real service (so that those tests run with ``per_app``, the default, too)."""

from __future__ import annotations

from typing import Any

from apps_registry.models import App
from apps_registry.selectors import secrets_handed_out
from apps_registry.serialization import requirements_from_json
from integrations.app_authorization import AllowItem, app_authorization_allow
from integrations.core.catalogue import CredentialKind
from integrations.models import Connection
from integrations.providers import registry


def allow_declared(user: Any, app: str) -> None:
    """Allow ``app`` (``namespace/name``) every capability its current version declares
    on each of ``user``'s connections of that provider, every credential capability and
    every declared secret."""
    namespace, _, name = app.partition("/")
    row = App.objects.select_related("current_version").filter(namespace=namespace, name=name)
    version = row[0].current_version if row else None
    if version is None:
        return
    cat = registry.catalogue()
    items: list[AllowItem] = []
    conns = list(Connection.objects.filter(user=user))
    for req in requirements_from_json(version.parsed, "integrations"):
        cap = cat.by_key.get(req.key)
        if cap is None:
            continue
        if cap.kind is CredentialKind.OAUTH:
            items += [
                AllowItem("capability", req.key, c.pk) for c in conns if c.provider == cap.provider
            ]
        else:
            items.append(AllowItem("capability", req.key))
    items += [AllowItem("secret", r.key) for r in secrets_handed_out(version.parsed)]
    app_authorization_allow(user=user, app=app, version=version.number, items=items)
