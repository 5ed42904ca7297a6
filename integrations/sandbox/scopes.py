"""How the consent page names a Google scope. Pure: catalogue data, no models."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from integrations.core.catalogue import BUILTIN

# Identity scopes are always granted: the consent page shows them without a checkbox.
IDENTITY_SCOPES: tuple[str, ...] = BUILTIN.providers["google"].identity_scopes

_IDENTITY_TEXT: dict[str, tuple[str, str]] = {
    "openid": ("Your account ID", "Associate you with your personal info on Google"),
    "email": ("Your email address", "See your primary Google Account email address"),
}


@dataclass(frozen=True)
class ScopeInfo:
    scope: str
    label: str
    description: str
    restricted: bool = False
    identity: bool = False


def describe_scope(scope: str) -> ScopeInfo:
    """The catalogue's label and description for a Google ``scope``.

    A scope no capability uses alone is shown as itself.
    """
    if scope in _IDENTITY_TEXT:
        label, description = _IDENTITY_TEXT[scope]
        return ScopeInfo(scope=scope, label=label, description=description, identity=True)
    for cap in BUILTIN.oauth_capabilities_of("google"):
        if cap.scopes == (scope,):
            return ScopeInfo(
                scope=scope,
                label=cap.label,
                description=cap.description,
                restricted=cap.restricted,
            )
    return ScopeInfo(scope=scope, label=scope, description="")


def merge_scopes(*groups: Iterable[str]) -> list[str]:
    """The scopes of every group, de-duplicated, first occurrence first."""
    seen: dict[str, None] = {}
    for group in groups:
        for scope in group:
            seen.setdefault(scope, None)
    return list(seen)
