"""Webhook endpoints, staff's (the admin and ``/api/v1/webhook-endpoints/``): made with a
signing secret shown once (``whsec_...``, Standard Webhooks), stored encrypted under
``INTEGRATIONS_TOKEN_KEYS`` as tokens are; the secret rotated; enabled and disabled.
Every change is audited (``webhook_endpoint``), never with the secret."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from django.db import transaction
from django.db.models import QuerySet

from integrations import app_settings
from integrations.audit import audit_record
from integrations.core import crypto
from integrations.core import webhooks as policy
from integrations.errors import InvalidWebhookEndpointError, UnknownEventTypeError
from integrations.events.emit import check_event_types
from integrations.models import AuditEvent, WebhookEndpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class EndpointMade:
    """An endpoint and its signing secret, which is shown this once."""

    endpoint: WebhookEndpoint
    secret: str


def check_url(url: str) -> str:
    """``url`` when it can be an endpoint's; ``InvalidWebhookEndpointError`` otherwise.
    Where it leads is checked when each request is made (the outbound guard)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidWebhookEndpointError("the URL must be an http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidWebhookEndpointError("the URL must not carry a user name or password")
    if len(url) > 2000:
        raise InvalidWebhookEndpointError("the URL is longer than 2,000 characters")
    return url


def _check_types(types: Sequence[str]) -> list[str]:
    try:
        return check_event_types(list(types))
    except UnknownEventTypeError as exc:
        raise InvalidWebhookEndpointError(str(exc)) from None


def _audit(endpoint: WebhookEndpoint, *, action: str, by: User | None, **detail: object) -> None:
    audit_record(
        kind=AuditEvent.Kind.WEBHOOK_ENDPOINT,
        provider="webhooks",
        user=by,
        account=endpoint.url[:254],
        detail={"endpoint_id": endpoint.pk, "action": action, **detail},
    )


def _encrypted(secret: str) -> bytes:
    return crypto.encrypt(secret, keys=app_settings.token_keys())


@transaction.atomic
def webhook_endpoint_create(
    *,
    url: str,
    event_types: Sequence[str] = (),
    description: str = "",
    enabled: bool = True,
    by: User | None = None,
) -> EndpointMade:
    """A new endpoint for ``event_types`` (empty: every type), and its signing secret."""
    secret = policy.secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        url=check_url(url),
        event_types=_check_types(event_types),
        description=description[:200],
        enabled=enabled,
        secret_encrypted=_encrypted(secret),
    )
    _audit(endpoint, action="created", by=by, event_types=endpoint.event_types)
    return EndpointMade(endpoint=endpoint, secret=secret)


@transaction.atomic
def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url: str | None = None,
    event_types: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
    by: User | None = None,
) -> WebhookEndpoint:
    """Change what is given. Enabling again forgets the failing streak (a disabled
    endpoint's 5 days start anew)."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    fields: list[str] = []
    if url is not None and url != locked.url:
        locked.url = check_url(url)
        fields.append("url")
    if event_types is not None:
        locked.event_types = _check_types(event_types)
        fields.append("event_types")
    if description is not None:
        locked.description = description[:200]
        fields.append("description")
    if enabled is not None and enabled != locked.enabled:
        locked.enabled = enabled
        fields.append("enabled")
        if enabled:
            locked.failing_since = None
            locked.disabled_at = None
            locked.disabled_reason = ""
            fields += ["failing_since", "disabled_at", "disabled_reason"]
    if fields:
        locked.save(update_fields=[*fields, "updated_at"])
        _audit(locked, action="updated", by=by, fields=sorted(set(fields)))
    return locked


@transaction.atomic
def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint, by: User | None = None) -> str:
    """A new signing secret, returned this once; the old one signs nothing from now."""
    secret = policy.secret_generate()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_encrypted=_encrypted(secret))
    endpoint.refresh_from_db(fields=["secret_encrypted", "updated_at"])
    _audit(endpoint, action="secret_rotated", by=by)
    return secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, by: User | None = None) -> None:
    """Delete the endpoint, with its deliveries and their attempts."""
    _audit(endpoint, action="deleted", by=by)
    endpoint.delete()


def webhook_endpoint_secret(*, endpoint: WebhookEndpoint) -> str:
    """The signing secret, to sign with (``DecryptionError`` if the keys lost it)."""
    return crypto.decrypt(endpoint.secret_encrypted, keys=app_settings.token_keys())


# --- selectors ------------------------------------------------------------------------


def webhook_endpoints() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("id")


def webhook_endpoint_get(*, id: int) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.filter(pk=id).first()
