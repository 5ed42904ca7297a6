"""What the sandbox records beside django-oauth-toolkit's own tables.

No row holds a token value: revocations keep only a SHA-256 of the token.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class SandboxGrantOption(models.Model):
    """Google's authorization-request options that DOT's Grant has no field for,
    keyed by the authorization code (a short-lived, single-use value).

    Deleted when the code is exchanged.
    """

    code = models.CharField(max_length=255, unique=True)
    # access_type=offline: only then does the code exchange issue a refresh token.
    offline = models.BooleanField(default=False)
    # include_granted_scopes=true: the token's scope adds what the user granted earlier.
    include_granted_scopes = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"Grant options #{self.pk}"


class SandboxTokenRequest(models.Model):
    """One request to the token endpoint, whatever its outcome.

    Lets tests count, on the server side, how many code exchanges and refreshes
    a client really made.
    """

    OUTCOME_OK = "ok"

    grant_type = models.CharField(max_length=100, db_index=True)
    client_id = models.CharField(max_length=255, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # "ok", or the RFC 6749 §5.2 error code of the response (e.g. "invalid_grant").
    outcome = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.grant_type} by {self.client_id}: {self.outcome}"


class SandboxRevocation(models.Model):
    """A successful call to the revoke endpoint (which removed the whole grant)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    client_id = models.CharField(max_length=255)
    token_type_hint = models.CharField(max_length=40, blank=True)
    # The revoked token's SHA-256 (DOT's token_checksum), never the token.
    token_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Revocation by {self.client_id} at {self.created_at:%Y-%m-%d %H:%M:%S}"
