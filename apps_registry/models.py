"""Apps, their manifest versions, and the API tokens CI pipelines upload with.

Rows are written only by ``apps_registry.services``; views and the API read them
through ``apps_registry.selectors``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class App(models.Model):
    """An app, ``namespace/name``, owned by the user who first uploaded it.

    ``current_version`` is the newest *valid* version; it stays NULL while the app has
    only invalid uploads (such an app is visible to its owner and staff only).
    """

    namespace = models.CharField(max_length=64)
    name = models.CharField(max_length=64)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="apps"
    )
    current_version = models.ForeignKey(
        "ManifestVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["namespace", "name"], name="app_unique_slug")
        ]
        ordering = ["namespace", "name"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def slug(self) -> str:
        return f"{self.namespace}/{self.name}"


class ManifestVersion(models.Model):
    """One upload of an app's ``inf.yml``, valid or not (nothing is lost on bad input).

    ``parsed`` is the :class:`apps_registry.manifest.Manifest` as JSON (empty when the
    upload was refused); ``errors`` and ``warnings`` are lists of
    ``{line, column, path, message}``. ``number`` counts 1, 2, 3... per app.
    """

    app = models.ForeignKey(App, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    raw_text = models.TextField()
    parsed = models.JSONField(default=dict, blank=True)
    valid = models.BooleanField()
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["app", "number"], name="manifest_version_unique_number")
        ]
        ordering = ["app", "-number"]

    def __str__(self) -> str:
        return f"{self.app} v{self.number} ({'valid' if self.valid else 'invalid'})"


class ApiToken(models.Model):
    """A personal API token for CI uploads. Only a SHA-256 hash of the token is kept;
    the token itself is shown once, when it is made (``services.api_token_create``).

    ``prefix`` (the token's first characters) tells tokens apart in lists; it is not
    enough to use one.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RunnerToken(models.Model):
    """The credential of a runner (the machine that starts app runs) for the run
    environment API. Made by staff in the admin and shown once; only a SHA-256 hash
    is kept. A revoked token stays listed for the record."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
