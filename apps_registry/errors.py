"""Errors of the apps registry. Messages are shown to uploaders as they are: they name
apps and manifest positions, never a token or a secret value."""

from __future__ import annotations

from apps_registry.manifest import ManifestProblem


class AppsRegistryError(Exception):
    """Base of the apps registry's errors."""


class AppOwnershipError(AppsRegistryError):
    """The app belongs to another user: only its owner (or staff) may change it."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(
            f"The app {slug} belongs to another user: only its owner can upload new versions. "
            "Pick another namespace or name."
        )


class ManifestRejectedError(AppsRegistryError):
    """The upload was refused and not kept: it is over the size limit, not UTF-8, not
    YAML that names an app, or otherwise impossible to file under an app.

    ``problems`` say why, with line and column, like ``ManifestError``'s.
    """

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
