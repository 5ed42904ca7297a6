"""Apps, their manifest versions, namespaces and their owners, the API tokens CI
pipelines upload with, and runners with their tokens.

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


class Namespace(models.Model):
    """The first part of ``namespace/name``, owned by its publisher.

    Claimed by its first uploader (``services.manifest_upload``) or made by staff in the
    admin. Only its ``owners`` (and staff) upload apps into it; owners add co-owners by
    email. A ``reserved`` namespace is never claimed by an upload: staff assign its
    owners. ``verified``: staff vouch for the publisher (the app page shows a mark).
    """

    name = models.CharField(max_length=64, unique=True)
    owners = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="owned_namespaces"
    )
    reserved = models.BooleanField(
        default=False, help_text="Only staff upload here, and assign the owners."
    )
    verified = models.BooleanField(
        default=False, help_text="Staff vouch for the publisher: the app pages show a mark."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Runner(models.Model):
    """A machine that starts app runs, and what it may serve: the apps of ``namespaces``
    (a list of names), or every namespace when ``all_namespaces`` (always explicit).

    It holds at most two live tokens (``RunnerToken``), so that a new one can be
    deployed before the old one is revoked.
    """

    name = models.CharField(max_length=100, unique=True)
    all_namespaces = models.BooleanField(default=False)
    namespaces = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def scope(self) -> str:
        """The scope as a line: ``all namespaces`` or ``acme, beta``."""
        return "all namespaces" if self.all_namespaces else ", ".join(self.namespaces) or "none"


class RunnerToken(models.Model):
    """A credential of a runner for the run environment API. Made by staff (the admin,
    ``manage.py create_runner_token``) and shown once; only a SHA-256 hash is kept. It
    stops working when revoked or past ``expires_at``; a revoked token stays listed
    for the record."""

    runner = models.ForeignKey(Runner, on_delete=models.PROTECT, related_name="tokens")
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.runner.name} ({self.prefix}…)"

    @property
    def name(self) -> str:
        return self.runner.name


class PlatformCredential(models.Model):
    """A platform backend's credential for the connections API (``ihp_...``), with
    ``scopes`` (``connections:read``, ``connections:write``) over every user's
    connections. Made by staff (the admin, ``manage.py create_platform_credential``)
    and shown once; only a SHA-256 hash is kept. It stops working when revoked or past
    ``expires_at``; a revoked one stays listed for the record (the audit log names
    credentials by ``name``)."""

    SCOPE_READ = "connections:read"
    SCOPE_WRITE = "connections:write"
    SCOPES = (SCOPE_READ, SCOPE_WRITE)

    name = models.CharField(max_length=100, unique=True)
    scopes = models.JSONField(default=list)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
