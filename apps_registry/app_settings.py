"""Every apps registry setting is read here, at call time (so tests may override them)."""

from __future__ import annotations

from django.conf import settings


def reserved_namespaces() -> frozenset[str]:
    """Namespaces no upload claims (``APPS_RESERVED_NAMESPACES``), lowercased."""
    return frozenset(str(n).strip().lower() for n in settings.APPS_RESERVED_NAMESPACES if n)
