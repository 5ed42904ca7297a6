"""Errors of the apps registry. Messages are shown to uploaders as they are: they name
apps and manifest positions, never a token or a secret value."""

from __future__ import annotations

from typing import Any

from apps_registry.manifest import ManifestError
from integrations.errors import IntegrationError


class AppOwnershipError(IntegrationError):
    """The app belongs to another user: only its owner (or staff) may change it (403,
    answered as DRF answers a permission denied: ``{"detail": message}``)."""

    status = 403
    code = "permission_denied"
    refused_as = None
    log_level = None

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(
            f"The app {slug} belongs to another user: only its owner can upload new versions. "
            "Pick another namespace or name."
        )

    def payload(self) -> dict[str, Any]:
        return {"detail": str(self)}


class ManifestRejectedError(ManifestError):
    """The upload was refused and not kept: it is over the size limit, not UTF-8, not
    YAML that names an app, or otherwise impossible to file under an app.

    ``problems`` say why, with line and column, as every ``ManifestError``'s do.
    """
