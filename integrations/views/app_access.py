"""Remove access (per-app authorization): the Integrations page's button per app
allowed on a connection, the Secrets page's per app allowed a secret, the Service
accounts page's per app allowed a key. The connection, secret or key comes through its
ownership selector; an app that was not allowed it (or a name that is no app's)
answers 404, like another user's object."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from integrations import app_authorization, selectors, service_accounts
from integrations.errors import InvalidAppSlugError
from integrations.types import AuthenticatedHttpRequest


def _app_of(request: AuthenticatedHttpRequest) -> str:
    try:
        return app_authorization.check_app_slug(request.POST.get("app", ""))
    except InvalidAppSlugError:
        raise Http404("No such app.") from None


@require_POST
@login_required
def app_access_remove(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """The app's next run gets no token from this connection until allowed again."""
    conn = selectors.connection_for_user(user=request.user, id=id)
    app = _app_of(request)
    removed = app_authorization.app_access_remove_for_connection(
        user=request.user, app=app, connection=conn
    )
    if not removed:
        raise Http404("This app was not allowed to use this connection.")
    who = conn.account_email or conn.account_uid
    messages.success(
        request,
        f"Removed {app}'s access to {who}. It will ask you to allow it again on its page.",
    )
    return redirect("integrations:page")


@require_POST
@login_required
def secret_access_remove(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """The app's next run does not get this secret until allowed again."""
    secret = selectors.secret_for_user(user=request.user, id=id)
    app = _app_of(request)
    removed = app_authorization.app_access_remove_for_secret(
        user=request.user, app=app, secret=secret
    )
    if not removed:
        raise Http404("This app was not allowed to use this secret.")
    messages.success(
        request,
        f"Removed {app}'s access to {secret.key}. It will ask you to allow it again on its page.",
    )
    return redirect("integrations:secrets")


@require_POST
@login_required
def service_account_access_remove(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """The app's next run gets nothing from this service-account key (``google.sa``, or
    the GCP project's ``gcp.*``) until allowed again."""
    key = selectors.service_account_key_for_user(user=request.user, id=id)
    app = _app_of(request)
    removed = app_authorization.app_access_remove_for_credentials(
        user=request.user, app=app, keys=service_accounts.capabilities_needing(key.purpose)
    )
    if not removed:
        raise Http404("This app was not allowed to use this service account.")
    messages.success(
        request,
        f"Removed {app}'s access to {key.client_email}. It will ask you to allow it again "
        "on its page.",
    )
    return redirect("integrations:service_accounts")
