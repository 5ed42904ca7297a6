"""Writes of the sandbox: its OAuth client, grant options, token-request and
revocation records."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.auth.hashers import check_password, identify_hasher
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import (
    AbstractApplication,
    get_access_token_model,
    get_application_model,
    get_grant_model,
    get_refresh_token_model,
)

from .models import SandboxGrantOption, SandboxRevocation, SandboxTokenRequest

if TYPE_CHECKING:
    from django.contrib.auth.models import User


SANDBOX_CLIENT_ID = "sandbox-google-client"
# Public on purpose: the sandbox is for development and tests only.
SANDBOX_CLIENT_SECRET = "sandbox-google-secret"
SANDBOX_CLIENT_NAME = "Sandbox Google"


def google_callback_uri(*, site_url: str) -> str:
    """The product's Google OAuth callback on the site at ``site_url``."""
    path = reverse("integrations:oauth_callback", kwargs={"provider_id": "google"})
    return site_url.rstrip("/") + path


def _secret_matches(stored: str, plain: str) -> bool:
    try:
        identify_hasher(stored)
    except ValueError:  # stored unhashed
        return stored == plain
    return check_password(plain, stored)


@transaction.atomic
def sandbox_client_ensure(*, redirect_uris: list[str]) -> AbstractApplication:
    """Get or create the sandbox's Google client and add any missing ``redirect_uris``
    (keeping the registered ones).

    The client is confidential, authorization-code only, without OIDC signing, and
    always asks for consent. Its secret is ``SANDBOX_CLIENT_SECRET``, stored hashed
    by DOT; a client whose stored secret no longer matches gets it back.
    """
    application_model = get_application_model()
    wanted: dict[str, Any] = {
        "name": SANDBOX_CLIENT_NAME,
        "client_type": AbstractApplication.CLIENT_CONFIDENTIAL,
        "authorization_grant_type": AbstractApplication.GRANT_AUTHORIZATION_CODE,
        "algorithm": AbstractApplication.NO_ALGORITHM,
        "skip_authorization": False,
    }
    app = application_model.objects.select_for_update().filter(client_id=SANDBOX_CLIENT_ID).first()
    if app is None:
        return application_model.objects.create(
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            hash_client_secret=True,
            redirect_uris=" ".join(dict.fromkeys(redirect_uris)),
            **wanted,
        )
    changed = [field for field, value in wanted.items() if getattr(app, field) != value]
    for field in changed:
        setattr(app, field, wanted[field])
    uris = app.redirect_uris.split()
    missing = [uri for uri in dict.fromkeys(redirect_uris) if uri not in uris]
    if missing:
        app.redirect_uris = " ".join([*uris, *missing])
        changed.append("redirect_uris")
    if not _secret_matches(app.client_secret, SANDBOX_CLIENT_SECRET):
        # DOT's ClientSecretField hashes the plain value on save.
        app.client_secret = SANDBOX_CLIENT_SECRET
        app.hash_client_secret = True
        changed += ["client_secret", "hash_client_secret"]
    if changed:
        app.save(update_fields=[*changed, "updated"])
    return app


def grant_option_create(
    *, code: str, offline: bool, include_granted_scopes: bool
) -> SandboxGrantOption:
    """Remember Google's request options for an authorization code until it is exchanged.

    Options of codes never exchanged are dropped once a day old.
    """
    SandboxGrantOption.objects.filter(created_at__lt=timezone.now() - timedelta(days=1)).delete()
    return SandboxGrantOption.objects.create(
        code=code, offline=offline, include_granted_scopes=include_granted_scopes
    )


def grant_option_delete(*, code: str) -> None:
    SandboxGrantOption.objects.filter(code=code).delete()


def token_request_record(
    *, grant_type: str, client_id: str, outcome: str, user: User | None
) -> SandboxTokenRequest:
    """Count one token-endpoint request."""
    return SandboxTokenRequest.objects.create(
        grant_type=grant_type[:100], client_id=client_id[:255], outcome=outcome[:100], user=user
    )


@transaction.atomic
def grant_revoke(
    *, user: User, application: AbstractApplication, token_type_hint: str, token_sha256: str
) -> SandboxRevocation:
    """Remove everything ``user`` granted ``application``, as Google's revoke endpoint
    does for either of the grant's tokens, and record it.

    https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke
    """
    refresh_tokens = get_refresh_token_model().objects.filter(
        user=user, application=application, revoked__isnull=True
    )
    for refresh_token in refresh_tokens:
        refresh_token.revoke()  # deletes its access token too
    get_access_token_model().objects.filter(user=user, application=application).delete()
    get_grant_model().objects.filter(user=user, application=application).delete()
    return SandboxRevocation.objects.create(
        user=user,
        client_id=application.client_id,
        token_type_hint=token_type_hint[:40],
        token_sha256=token_sha256,
    )
