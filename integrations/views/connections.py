"""Settings → Secrets → Integrations. Views parse input, call one service, render or
redirect; every user object comes through ``selectors.connection_for_user``."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from integrations import app_authorization, app_settings, selectors
from integrations.connections import own_clients
from integrations.connections.connect import connection_make_default
from integrations.connections.disconnect import connection_disconnect
from integrations.connections.forced_refresh import connection_refresh_force
from integrations.core.catalogue import Capability, ProductRow, product_rows
from integrations.core.connection_status import StatusLine, status_line
from integrations.core.crypto import DecryptionError
from integrations.core.provider_config import ProviderConfig
from integrations.errors import (
    ConnectionNeedsReconnectError,
    IntegrationError,
    ProviderDisabledError,
    ProviderUnavailableError,
    RefreshRateLimitedError,
    UnknownProviderError,
)
from integrations.oauth.adapter import safe_next
from integrations.oauth.flows import connection_start
from integrations.oauth.provider import IntegrationOAuth2Adapter
from integrations.providers import registry
from integrations.types import AuthenticatedHttpRequest
from integrations.views.forms import CapabilitiesForm, OwnClientForm, capabilities_data

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from integrations.models import Connection, UserOAuthClient

logger = logging.getLogger(__name__)


@dataclass
class PickerLevel:
    capability: Capability
    granted: bool


@dataclass
class PickerRow:
    row: ProductRow
    levels: list[PickerLevel]
    current: Capability | None


def _picker(rows: list[ProductRow], satisfied: set[str]) -> list[PickerRow]:
    picker = []
    for row in rows:
        levels = [PickerLevel(capability=c, granted=c.key in satisfied) for c in row.levels]
        if all(level.granted for level in levels):
            continue
        current = [level.capability for level in levels if level.granted]
        picker.append(PickerRow(row=row, levels=levels, current=current[-1] if current else None))
    return picker


@dataclass
class ConnectionRow:
    connection: Connection
    provider_name: str
    granted: list[Capability]
    addable: list[Capability]
    status: StatusLine
    # The latest run of an app handed its token (None: no app has used it yet).
    last_use: selectors.AppUse | None = None
    # The Add Permissions picker: every row with a level still to add; each level with
    # whether the grant already satisfies it, and the row's current (highest) level.
    picker: list[PickerRow] = field(default_factory=list)
    # The apps the user allowed to use this connection (per-app authorization).
    used_by: list[str] = field(default_factory=list)


@dataclass
class ProviderSection:
    config: ProviderConfig
    capabilities: list[Capability]
    connections: list[ConnectionRow] = field(default_factory=list)
    rows: list[ProductRow] = field(default_factory=list)
    own_client: UserOAuthClient | None = None

    @property
    def summary(self) -> str:
        """The card's one line: what connecting it lets apps use."""
        names = [row.name for row in self.rows]
        if not names:
            name = self.config.name
            return f"Lets apps act for your {name} account, with the permissions you choose."
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"Lets apps use your {listed}, with the permissions you choose."

    @property
    def monogram(self) -> str:
        """The logo's letter (a tile in the provider's colour: no third-party artwork)."""
        return (self.config.name[:1] or "?").upper()

    @property
    def can_connect(self) -> bool:
        if not self.config.allow_user_clients:
            return self.config.configured
        return self.config.managed or self.own_client is not None

    @property
    def redirect_uri(self) -> str:
        return app_settings.site_url() + reverse(
            "integrations:oauth_callback", kwargs={"provider_id": self.config.id}
        )


def _config_or_404(provider_id: str, *, user: User) -> ProviderConfig:
    """The configuration of a flow of ``user``'s: 404 for an unknown or disabled provider."""
    try:
        return registry.flow_config(provider_id, user=user)
    except (UnknownProviderError, ProviderDisabledError):
        raise Http404("No such provider.") from None


@login_required
def integrations_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    cat = registry.catalogue()
    sections = {
        config.id: ProviderSection(
            config=config,
            capabilities=cat.oauth_capabilities_of(config.id),
            rows=product_rows(cat.oauth_capabilities_of(config.id)),
        )
        for config in registry.connectable_providers()
    }
    for client in selectors.own_clients_for_user(user=request.user):
        if client.provider in sections:
            sections[client.provider].own_client = client
    used_by = app_authorization.apps_by_connection(user=request.user)
    connections = [
        c for c in selectors.connections_for_user(user=request.user) if c.provider in sections
    ]
    last_use = selectors.last_app_use_by_connection(user=request.user, connections=connections)
    now = timezone.now()
    for conn in connections:
        section = sections[conn.provider]
        granted = cat.granted_capabilities(conn.provider, conn.scopes)
        section.connections.append(
            ConnectionRow(
                connection=conn,
                provider_name=section.config.name,
                granted=[cat.by_key[k] for k in cat.effective_capabilities(granted)],
                addable=[c for c in section.capabilities if not cat.is_satisfied(c.key, granted)],
                status=status_line(
                    status=conn.status,
                    has_refresh_token=conn.has_refresh_token,
                    expires_at=conn.expires_at,
                    last_error_code=conn.last_error_code,
                    backoff_until=conn.backoff_until,
                    now=now,
                ),
                last_use=last_use.get(conn.pk),
                used_by=used_by.get(conn.pk, []),
                picker=_picker(
                    section.rows,
                    {c.key for c in section.capabilities if cat.is_satisfied(c.key, granted)},
                ),
            )
        )
    broken = [
        row
        for section in sections.values()
        for row in section.connections
        if row.connection.needs_reconnect
    ]
    return render(
        request,
        "integrations/page.html",
        {"sections": list(sections.values()), "broken": broken},
    )


def _start(
    request: HttpRequest,
    *,
    provider_id: str,
    offered: list[Capability],
    connection: Connection | None = None,
) -> HttpResponse:
    form = CapabilitiesForm(capabilities_data(request.POST), offered=offered)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("integrations:page")
    try:
        return connection_start(
            request=request,
            provider_id=provider_id,
            capabilities=form.cleaned_data["capabilities"],
            connection=connection,
            next_url=safe_next(request, form.cleaned_data.get("next")),
            app=form.cleaned_data.get("app") or "",
            app_version=form.cleaned_data.get("app_version") or 1,
        )
    except IntegrationError as exc:
        messages.error(request, str(exc))
        return redirect("integrations:page")


@sensitive_post_parameters("client_secret")
@login_required
@require_POST
def own_client_set(request: AuthenticatedHttpRequest, provider_id: str) -> HttpResponse:
    """Your-own mode: the user's client ID and secret for this provider."""
    # Not the flow's configuration: that would decrypt the client being replaced.
    try:
        config = registry.provider_info(provider_id)
    except UnknownProviderError:
        raise Http404("No such provider.") from None
    form = OwnClientForm(request.POST)
    if not (config.enabled and config.allow_user_clients):
        raise Http404("This provider does not take your own client.")
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return redirect("integrations:page")
    own_clients.user_client_set(
        user=request.user,
        provider=config.id,
        client_id=form.cleaned_data["client_id"],
        client_secret=form.cleaned_data["client_secret"],
    )
    messages.success(request, f"Saved your own {config.name} client. You can connect now.")
    return redirect("integrations:page")


@login_required
@require_POST
def own_client_delete(request: AuthenticatedHttpRequest, provider_id: str) -> HttpResponse:
    client = selectors.own_client_for_user(user=request.user, provider=provider_id)
    count = own_clients.user_client_delete(client=client)
    messages.success(
        request,
        "Removed your own client."
        + (f" {count} connection(s) made with it need reconnecting." if count else ""),
    )
    return redirect("integrations:page")


@login_required
@require_POST
def connect(request: AuthenticatedHttpRequest, provider_id: str) -> HttpResponse:
    config = _config_or_404(provider_id, user=request.user)
    if not config.configured:
        if config.allow_user_clients:
            messages.error(
                request,
                f"To connect {config.name}, first add your own {config.name} app's client "
                "ID and secret below.",
            )
            return redirect(reverse("integrations:page") + f"#provider-{config.id}")
        messages.error(request, f"{config.name} is not set up on this server yet; ask staff.")
        return redirect("integrations:page")
    return _start(
        request,
        provider_id=config.id,
        offered=registry.catalogue().oauth_capabilities_of(config.id),
    )


@login_required
@require_POST
def add_permissions(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    conn = selectors.connection_for_user(user=request.user, id=id)
    _config_or_404(conn.provider, user=request.user)  # unknown or disabled: 404
    cat = registry.catalogue()
    granted = cat.granted_capabilities(conn.provider, conn.scopes)
    offered = [
        c for c in cat.oauth_capabilities_of(conn.provider) if not cat.is_satisfied(c.key, granted)
    ]
    return _start(request, provider_id=conn.provider, offered=offered, connection=conn)


@login_required
@require_POST
def reconnect(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """Connect again for the same account and capabilities, after the grant died."""
    conn = selectors.connection_for_user(user=request.user, id=id)
    _config_or_404(conn.provider, user=request.user)  # unknown or disabled: 404
    cat = registry.catalogue()
    granted = cat.granted_capabilities(conn.provider, conn.scopes)
    try:
        return connection_start(
            request=request,
            provider_id=conn.provider,
            capabilities=cat.effective_capabilities(granted),
            connection=conn,
            reconnect=True,
        )
    except IntegrationError as exc:
        messages.error(request, str(exc))
        return redirect("integrations:page")


@login_required
@require_POST
def retry_refresh(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """Retry now: renew a failing connection's access token at once (a forced refresh,
    at most one per connection per ``INTEGRATIONS_FORCED_REFRESH_INTERVAL``)."""
    conn = selectors.connection_for_user(user=request.user, id=id)
    name = _provider_name(conn)
    try:
        forced = connection_refresh_force(
            connection=conn, actor={"by": f"user:{request.user.pk}", "via": "integrations_page"}
        )
    except type(conn).DoesNotExist:  # disconnected meanwhile
        messages.error(request, "This connection was disconnected meanwhile.")
    except RefreshRateLimitedError as exc:
        messages.warning(
            request,
            f"A retry was made moments ago. You can retry in {exc.retry_after} "
            f"second{pluralize(exc.retry_after)}; we also keep retrying automatically.",
        )
    except ConnectionNeedsReconnectError:
        messages.error(
            request,
            f"{name} no longer accepts this connection. Reconnect it so that apps can use it "
            "again.",
        )
    except ProviderUnavailableError:
        # No answer, or no request made (the day's attempts are used up).
        messages.error(
            request, f"{name} could not renew it this time. We keep retrying automatically."
        )
    except (DecryptionError, UnknownProviderError) as exc:
        # Staff's to fix (a lost token key, a deleted provider definition): not the user's.
        logger.error("connection %s: Retry now cannot renew it: %s", conn.pk, exc.code)
        messages.error(
            request,
            "This connection cannot be renewed until the server's staff fix its setup; "
            "they have been told in the server's log.",
        )
    except IntegrationError:
        messages.error(request, f"{name} refused the renewal. We keep retrying automatically.")
    else:
        if forced.refreshed:
            messages.success(request, f"Renewed: {name} answered and the connection works again.")
        else:
            messages.info(
                request,
                f"Nothing to renew with: {name} gave this connection no way to renew its "
                "access. Reconnect it once its access has ended.",
            )
    return redirect(reverse("integrations:page") + f"#provider-{conn.provider}")


def _provider_name(conn: Connection) -> str:
    try:
        return registry.provider_info(conn.provider).name
    except UnknownProviderError:
        return conn.provider  # its definition was deleted


@login_required
@require_POST
def make_default(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    conn = selectors.connection_for_user(user=request.user, id=id)
    connection_make_default(connection=conn)
    messages.success(
        request, f"Apps now use {conn.account_email or conn.account_uid} unless they name another."
    )
    return redirect("integrations:page")


@login_required
@require_http_methods(["GET", "POST"])
def disconnect(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    conn = selectors.connection_for_user(user=request.user, id=id)
    name = _provider_name(conn)  # its definition deleted: the connection still goes
    if request.method == "GET":
        return render(
            request,
            "integrations/disconnect.html",
            {
                "connection": conn,
                "provider_name": name,
                "used_by": app_authorization.apps_by_connection(user=request.user).get(conn.pk, []),
            },
        )
    who = conn.account_email or conn.account_uid
    outcome = connection_disconnect(connection=conn)
    if outcome.ok:
        messages.success(request, f"Disconnected {name} ({who}); {name} revoked the access.")
    elif outcome.error_code in ("no_revocation_endpoint", "unknown_provider"):
        messages.warning(
            request,
            f"Disconnected {name} ({who}) and deleted its tokens here. {name} offers no "
            "way to revoke the access from here: remove it in your account's security "
            "settings at the provider.",
        )
    else:
        messages.warning(
            request,
            f"Disconnected {name} ({who}) and deleted its tokens here, but "
            f"{name} did not confirm the revocation ({outcome.error_code}). "
            "You can remove the access in your account's security settings at the provider.",
        )
    return redirect("integrations:page")


def oauth_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    """The redirect URI registered at the provider: allauth's OAuth 2.0 callback, with
    our adapter (allauth checks ``state``, sends the PKCE verifier, exchanges the code)."""
    try:
        adapter = IntegrationOAuth2Adapter(request, provider_id)
    except (UnknownProviderError, ProviderDisabledError):
        raise Http404("No such provider.") from None
    return OAuth2CallbackView.adapter_view(adapter)(request)
