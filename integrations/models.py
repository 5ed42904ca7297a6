from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from integrations.core import statuses, time_zones
from integrations.core.service_account_keys import PURPOSE_GCP, PURPOSE_GOOGLE_SA
from integrations.errors import AuditEventImmutableError


class Connection(models.Model):
    """One user's authorized account at one provider.

    Tokens are stored encrypted (see ``integrations.core.crypto``) and only ever written by
    services. ``scopes`` are what the provider granted (the token response's
    ``scope``), never what we asked for.
    """

    class Status(models.TextChoices):
        # The values are ``integrations.core.statuses``'s (pure code compares with those).
        ACTIVE = statuses.ACTIVE, "Active"
        REFRESH_FAILING = statuses.REFRESH_FAILING, "Refresh failing"
        NEEDS_RECONNECT = statuses.NEEDS_RECONNECT, "Needs reconnect"
        REVOKED = statuses.REVOKED, "Revoked"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections"
    )
    provider = models.CharField(max_length=64)
    account_uid = models.CharField(max_length=255)
    account_email = models.CharField(max_length=254, blank=True)
    scopes = models.JSONField(default=list)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE)
    access_token_encrypted = models.BinaryField()
    refresh_token_encrypted = models.BinaryField(null=True, blank=True)
    # 8 hex digits of SHA-256 of the access token: tells two tokens apart in the admin.
    token_fingerprint = models.CharField(max_length=8, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # --- refresh bookkeeping (integrations.connections.refresh) ---
    # When the background sweep should refresh this connection next: ahead of expiry
    # for connections in use, a keep-alive for idle ones, a backoff after failures.
    # NULL: never (no refresh token, or the grant is dead). Indexed where not NULL, so
    # the sweep's cost follows the number of due connections, not the table size.
    next_refresh_at = models.DateTimeField(null=True, blank=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    # When the provider last accepted the access token at its userinfo endpoint (a grant
    # revoked at the provider is found out this way before its token expires).
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Consecutive transient failures (drives the backoff), and the attempts made in the
    # current 24-hour window (bounded per connection per day).
    refresh_failures = models.PositiveIntegerField(default=0)
    # After a transient failure: no attempt before this time (exponential backoff).
    backoff_until = models.DateTimeField(null=True, blank=True)
    attempts_window_start = models.DateTimeField(null=True, blank=True)
    attempts_in_window = models.PositiveIntegerField(default=0)
    last_error_code = models.CharField(max_length=64, blank=True)
    # The one "please reconnect" email per broken grant.
    reconnect_notified_at = models.DateTimeField(null=True, blank=True)
    # The user's own OAuth client this grant was made with ("your own" mode), if any.
    oauth_client = models.ForeignKey(
        "UserOAuthClient", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The connection runs use when an app does not name one (per user and provider).
    is_default = models.BooleanField(default=False)
    # The last refresh forced through the connections API: at most one per
    # INTEGRATIONS_FORCED_REFRESH_INTERVAL (a column, so that every web process sees it).
    last_forced_refresh_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "provider", "account_uid"], name="connection_unique_account"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_refresh_at"],
                condition=models.Q(next_refresh_at__isnull=False),
                name="connection_next_refresh_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.account_email or self.account_uid} ({self.status})"

    @property
    def has_refresh_token(self) -> bool:
        return bool(self.refresh_token_encrypted)

    @property
    def needs_reconnect(self) -> bool:
        """The grant has ended (``invalid_grant``): only a Reconnect brings it back."""
        return self.status == self.Status.NEEDS_RECONNECT


def validate_time_zone(value: str) -> None:
    if value and not time_zones.is_time_zone(value):
        raise ValidationError(f"{value!r} is not a time zone this server knows.")


class UserPreferences(models.Model):
    """How pages are shown to one user. ``time_zone``: an IANA name; "" until the user
    (or their browser) chose one, shown as UTC."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences"
    )
    time_zone = models.CharField(max_length=64, blank=True, validators=[validate_time_zone])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "user preferences"

    def __str__(self) -> str:
        return f"preferences of user {self.user_id}"


class AuditEvent(models.Model):
    """Append-only record of what happened to connections. Never holds a token value."""

    class Kind(models.TextChoices):
        CONNECT = "connect", "Connect"
        ADD_PERMISSIONS = "add_permissions", "Add permissions"
        CONNECT_REFUSED = "connect_refused", "Connect refused"
        REFRESH_SUCCEEDED = "refresh_succeeded", "Refresh succeeded"
        REFRESH_FAILED = "refresh_failed", "Refresh failed"
        STATUS_CHANGED = "status_changed", "Status changed"
        DISCONNECT = "disconnect", "Disconnect"
        REVOCATION = "revocation", "Revocation"
        SECRET_SET = "secret_set", "Secret set"
        SECRET_DELETED = "secret_deleted", "Secret deleted"
        SERVICE_ACCOUNT_SET = "service_account_set", "Service account set"
        SERVICE_ACCOUNT_DELETED = "service_account_deleted", "Service account deleted"
        # Google refused the key when a token was minted (invalid_grant: deleted key).
        SERVICE_ACCOUNT_REJECTED = "service_account_rejected", "Service account rejected"
        # A runner was handed an app run's environment (the keys, never the values).
        RUN_ENVIRONMENT = "run_environment", "Run environment"
        # An owner of an app namespace added or removed (``detail``: namespace, by whom).
        NAMESPACE_OWNER_ADDED = "namespace_owner_added", "Namespace owner added"
        NAMESPACE_OWNER_REMOVED = "namespace_owner_removed", "Namespace owner removed"
        # A user allowed an app to use named capabilities and secrets, or removed that.
        APP_ALLOWED = "app_allowed", "App allowed"
        APP_ACCESS_REMOVED = "app_access_removed", "App access removed"
        # Through the connections API (``detail``: ``by``, the platform credential's
        # name or the user's id, and ``via``).
        REFRESH_FORCED = "refresh_forced", "Refresh forced"
        API_DISCONNECT = "api_disconnect", "Disconnected through the API"
        # Staff created, changed, rotated the secret of, or deleted a webhook endpoint;
        # a delivery was sent again (``detail``: ids, by whom; never the secret).
        WEBHOOK_ENDPOINT = "webhook_endpoint", "Webhook endpoint"
        WEBHOOK_REDELIVERED = "webhook_redelivered", "Webhook redelivered"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Not a foreign key: events outlive the connection they describe.
    connection_id = models.BigIntegerField(null=True, db_index=True)
    provider = models.CharField(max_length=64)
    account = models.CharField(max_length=254, blank=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    ok = models.BooleanField(default=True)
    error_code = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.kind} {self.provider}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Append-only: an event, once written, is never changed through the ORM.
        if not self._state.adding:
            raise AuditEventImmutableError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditEventImmutableError("audit events are append-only")


class ProviderHealth(models.Model):
    """A provider-level problem for staff (``invalid_client``, ``unauthorized_client``):
    our client is misconfigured or disabled; users are not emailed about it."""

    provider = models.CharField(max_length=64, unique=True)
    ok = models.BooleanField(default=True)
    error_code = models.CharField(max_length=64, blank=True)
    failures = models.PositiveIntegerField(default=0)
    first_failure_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "provider health"

    def __str__(self) -> str:
        return f"{self.provider}: {'ok' if self.ok else self.error_code}"


class Secret(models.Model):
    """A user's raw value with an env-style key (``FAL_KEY``), encrypted like tokens.

    Write-only: the value is never shown again, only ``fingerprint`` and when it was set.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="secrets"
    )
    key = models.CharField(max_length=128)
    value_encrypted = models.BinaryField()
    fingerprint = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="secret_unique_key_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.key} (…{self.fingerprint})"


class ProviderDefinition(models.Model):
    """An OAuth 2.0 provider defined as data by staff (presets in
    ``integrations.core.provider_definitions``). Google is built in, from the environment."""

    class ClientAuth(models.TextChoices):
        BASIC = "basic", "HTTP Basic (client_secret_basic)"
        POST = "post", "In the form (client_secret_post)"

    slug = models.SlugField(
        max_length=32,
        unique=True,
        help_text="The provider id: in capability keys (slug.*) and the callback path.",
    )
    name = models.CharField(max_length=80)
    enabled = models.BooleanField(
        default=False, help_text="Shown to users. Only after a successful check."
    )
    discovery_url = models.URLField(
        blank=True, help_text="OpenID Connect discovery; fills the endpoints when checked."
    )
    authorize_url = models.URLField(blank=True)
    token_url = models.URLField(blank=True)
    revocation_url = models.URLField(blank=True, help_text="RFC 7009; empty if none.")
    userinfo_url = models.URLField(blank=True)
    scope_separator = models.CharField(
        max_length=1, default=" ", choices=[(" ", "space"), (",", "comma")]
    )
    identity_scopes = models.JSONField(
        default=list, blank=True, help_text='Always asked for, e.g. ["openid", "email"].'
    )
    auth_params = models.JSONField(default=dict, blank=True)
    token_params = models.JSONField(default=dict, blank=True)
    refresh_params = models.JSONField(default=dict, blank=True)
    pkce = models.BooleanField(default=True)
    client_auth = models.CharField(max_length=8, choices=ClientAuth.choices, default="basic")
    rotates_refresh_tokens = models.BooleanField(default=False)
    default_lifetime = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds, when token responses carry no expires_in."
    )
    uid_field = models.CharField(max_length=64, default="sub")
    email_field = models.CharField(max_length=64, default="email", blank=True)
    capabilities = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"key": "slug.read", "label": …, "description": …, "scopes": […], '
        '"covers": […]}]',
    )
    env = models.JSONField(
        default=dict, blank=True, help_text='{"access_token": "ACME_ACCESS_TOKEN"}'
    )
    narrow_scope_on_refresh = models.BooleanField(
        default=False,
        help_text="The provider honours a narrower scope on refresh (RFC 6749 §6): runs "
        "get tokens narrowed to the app's capabilities.",
    )
    # Managed mode: the platform's client. Your-own mode: users bring theirs.
    client_id = models.CharField(max_length=255, blank=True)
    client_secret_encrypted = models.BinaryField(null=True, blank=True, editable=False)
    allow_user_clients = models.BooleanField(
        default=False, help_text="Users may bring their own client ID and secret."
    )
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(default=False)
    last_check_report = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"


class UserOAuthClient(models.Model):
    """A user's own OAuth client at a provider ("your own" mode): used for their flows
    and refreshes. The secret is encrypted and never shown back."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oauth_clients"
    )
    provider = models.CharField(max_length=64)
    client_id = models.CharField(max_length=255)
    client_secret_encrypted = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "provider"], name="one_own_client_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider} client {self.client_id}"


class ServiceAccountKey(models.Model):
    """A Google service-account key a user uploaded, for one purpose:

    - ``google_sa``: handed to apps as ``GOOGLE_SA_CREDENTIALS`` (capability ``google.sa``);
    - ``gcp``: the user's own GCP project (capabilities ``gcp.*``): short-lived access
      tokens are minted from it (RFC 7523) and handed out with ``project_number``.

    One per (user, purpose): uploading again replaces the row (a new id, so cached
    tokens of the old key are never served). The whole key JSON is encrypted like
    tokens and never shown again; ``fingerprint`` is 8 hex digits of its SHA-256.
    ``client_email``, ``project_id`` and ``private_key_id`` are not secrets (Google
    shows them in the console, and the key id travels in every signed JWT header).
    """

    class Purpose(models.TextChoices):
        GOOGLE_SA = PURPOSE_GOOGLE_SA, "Google service account"
        GCP = PURPOSE_GCP, "GCP project"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account_keys"
    )
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    client_email = models.CharField(max_length=254)
    project_id = models.CharField(max_length=128)
    # Digits only; a string so that it reaches apps exactly as typed (GCP_PROJECT_NUMBER).
    project_number = models.CharField(max_length=32, blank=True)
    private_key_id = models.CharField(max_length=64)
    key_encrypted = models.BinaryField()
    fingerprint = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    # When Google refused the key (invalid_grant, invalid_client, ...: deleted or
    # disabled): it is not used again, and counts as missing, until a new one is uploaded.
    refused_at = models.DateTimeField(null=True, blank=True)
    refused_code = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "purpose"], name="service_account_key_unique_purpose"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()}: {self.client_email} (…{self.fingerprint})"


class AppAuthorization(models.Model):
    """One item a user allowed one app to use: a capability (on a connection for OAuth
    capabilities, so that "Sheets: read (ada@example.com)" is exactly what was allowed;
    without one for credentials the user brings: ``google.sa``, ``gcp.*``,
    ``discord.bot``) or a secret by its key.

    The app is named by its slug (``namespace/name``), not a foreign key: integrations
    never depends on the apps registry. Disconnecting deletes a connection's rows
    (CASCADE); deleting a secret deletes its rows (``secrets.secret_delete``), so that
    a value added again under the same key must be allowed again. ``version`` is the
    manifest version that asked (for the pages and the audit log).
    """

    class Kind(models.TextChoices):
        CAPABILITY = "capability", "Capability"
        SECRET = "secret", "Secret"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="app_authorizations"
    )
    app = models.CharField(max_length=201)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=128)
    connection = models.ForeignKey(
        Connection,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="app_authorizations",
    )
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Two constraints: NULLs are distinct in a unique index (PostgreSQL, SQLite).
            models.UniqueConstraint(
                fields=["user", "app", "kind", "key", "connection"],
                condition=models.Q(connection__isnull=False),
                name="app_authorization_unique_on_connection",
            ),
            models.UniqueConstraint(
                fields=["user", "app", "kind", "key"],
                condition=models.Q(connection__isnull=True),
                name="app_authorization_unique_without_connection",
            ),
        ]
        indexes = [models.Index(fields=["user", "app"], name="app_authorization_user_app")]

    def __str__(self) -> str:
        return f"{self.app}: {self.kind} {self.key}"


# --- webhooks (integrations.events) ---------------------------------------------------


class Event(models.Model):
    """One change worth telling a platform (the outbox): written in the transaction of
    the change, so that a rolled-back change has none. ``uid`` is the ``webhook-id`` of
    every delivery of it, the same across retries (Standard Webhooks). ``data`` never
    holds a credential."""

    uid = models.CharField(max_length=40, unique=True)
    type = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(default=dict)
    # Not a foreign key: events outlive the user they describe, as audit events do.
    user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.uid}"


class WebhookEndpoint(models.Model):
    """Where staff want events delivered: ``event_types`` (empty: every type). The
    signing secret (``whsec_...``) is encrypted under ``INTEGRATIONS_TOKEN_KEYS`` and
    shown once, when made."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    secret_encrypted = models.BinaryField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    # The first failed attempt since the last success; after 5 days of failing, disabled.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint: the row is the source of truth (tasks only wake it).
    ``next_attempt_at``: when the next attempt is due (NULL: done); ``claimed_until``:
    a task was enqueued for it (the sweep does not enqueue it again before then)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Consecutive failures of the current schedule (a Redeliver starts a new one).
    failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="webhook_delivery_once_per_endpoint"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(next_attempt_at__isnull=False),
                name="webhook_delivery_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"


class WebhookAttempt(models.Model):
    """One request of a delivery: what came back, never the body or the signature."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    # "" on success; http_<status>, timeout, connection_error, private_address, ...
    error_code = models.CharField(max_length=64, blank=True)
    redelivery = models.BooleanField(default=False)

    class Meta:
        ordering = ["delivery_id", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error_code}"


class HealthMark(models.Model):
    """A fact ``/readyz`` checks (``integrations.health``): when beat's refresh sweep
    last ran, and the canary every configured key set must decrypt. One row per name."""

    name = models.CharField(max_length=64, unique=True)
    at = models.DateTimeField()
    # The key canary: a known text encrypted under INTEGRATIONS_TOKEN_KEYS (no secret).
    value = models.BinaryField(blank=True, default=b"")

    def __str__(self) -> str:
        return f"{self.name} at {self.at.isoformat()}"
