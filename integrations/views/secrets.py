"""Settings → Secrets: the Secrets tab (raw secrets) and the Service accounts tab
(a Google service-account key; the user's own GCP project).

Views parse input, call one service, render or redirect. Every user object comes
through a selector that checks ownership (``secret_for_user``,
``service_account_key_for_user``). Values are write-only: no response ever carries a
secret value or a key file, not even the form shown again after an error.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from integrations import app_authorization, secrets, selectors, service_accounts
from integrations.core.service_account_keys import PURPOSE_GCP, PURPOSE_GOOGLE_SA
from integrations.errors import InvalidSecretError, InvalidServiceAccountKeyError
from integrations.types import AuthenticatedHttpRequest
from integrations.views.forms import GcpProjectForm, SecretForm, ServiceAccountKeyForm

# URL segment → purpose.
_PURPOSES = {"google-sa": PURPOSE_GOOGLE_SA, "gcp": PURPOSE_GCP}


# --- Secrets ---------------------------------------------------------------------------


def _secrets_page(request: AuthenticatedHttpRequest, form: SecretForm) -> HttpResponse:
    return render(
        request,
        "integrations/secrets.html",
        {
            "settings_tab": "secrets",
            "secrets": _with_apps(request),
            "form": form,
        },
    )


def _with_apps(request: AuthenticatedHttpRequest) -> list[Any]:
    """The user's secrets, each with ``used_by``: the apps allowed to use it (two
    queries in all)."""
    used_by = app_authorization.apps_by_secret(user=request.user)
    rows = list(selectors.secrets_for_user(user=request.user))
    for secret in rows:
        # A display attribute for the template only, never saved.
        secret.used_by = used_by.get(secret.key, [])  # type: ignore[attr-defined]
    return rows


def _and_allow_again(request: AuthenticatedHttpRequest, key: str) -> str:
    """The apps allowed to use the secret ``key``, which must be allowed it again."""
    apps = app_authorization.apps_by_secret(user=request.user).get(key, [])
    return f" and allow it again to {', '.join(apps)}" if apps else ""


# Error reports (500 pages, admin emails) mask the write-only fields.
@sensitive_post_parameters("value")
@login_required
@require_http_methods(["GET", "POST"])
def secrets_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The list (key, fingerprint, when set) and the add-or-replace form."""
    if request.method == "GET":
        return _secrets_page(request, SecretForm())
    form = SecretForm(request.POST)
    if form.is_valid():
        key = form.cleaned_data["key"]
        try:
            result = secrets.secret_set(
                user=request.user, key=key, value=form.cleaned_data["value"]
            )
        except InvalidSecretError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{'Replaced' if result.replaced else 'Added'} {key}.")
            return redirect("integrations:secrets")
    messages.error(request, "The secret was not saved: see the form below.")
    return _secrets_page(request, form)


@login_required
@require_http_methods(["GET", "POST"])
def secret_delete(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """GET: the confirmation; POST: delete."""
    secret = selectors.secret_for_user(user=request.user, id=id)
    if request.method == "GET":
        return render(
            request,
            "integrations/confirm_delete.html",
            {
                "settings_tab": "secrets",
                "title": f"Delete {secret.key}?",
                "body": (
                    f"Apps that declare {secret.key} will not run until you set it again"
                    + _and_allow_again(request, secret.key)
                    + ". The value cannot be recovered."
                ),
                "button": f"Delete {secret.key}",
                "cancel_url": reverse("integrations:secrets"),
            },
        )
    key = secret.key
    secrets.secret_delete(secret=secret)
    messages.success(request, f"Deleted {key}.")
    return redirect("integrations:secrets")


# --- Service accounts ------------------------------------------------------------------


def _service_accounts_page(
    request: AuthenticatedHttpRequest,
    *,
    google_sa_form: ServiceAccountKeyForm | None = None,
    gcp_form: GcpProjectForm | None = None,
) -> HttpResponse:
    keys = selectors.service_account_keys_for_user(user=request.user)
    by_key = app_authorization.apps_by_credential(user=request.user)
    used_by = {
        purpose: sorted(
            {a for k in service_accounts.capabilities_needing(purpose) for a in by_key.get(k, [])}
        )
        for purpose in (PURPOSE_GOOGLE_SA, PURPOSE_GCP)
    }
    return render(
        request,
        "integrations/service_accounts.html",
        {
            "settings_tab": "service_accounts",
            # Per purpose, the apps the user allowed to use that key.
            "google_sa_used_by": used_by[PURPOSE_GOOGLE_SA],
            "gcp_used_by": used_by[PURPOSE_GCP],
            "google_sa": keys.get(PURPOSE_GOOGLE_SA),
            "gcp": keys.get(PURPOSE_GCP),
            "google_sa_form": google_sa_form or ServiceAccountKeyForm(),
            "gcp_form": gcp_form or GcpProjectForm(),
        },
    )


@login_required
def service_accounts_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _service_accounts_page(request)


@sensitive_post_parameters("key_json")
@login_required
@require_POST
def service_account_upload(request: AuthenticatedHttpRequest, purpose: str) -> HttpResponse:
    """Upload (or replace) the key of one purpose: ``google-sa`` or ``gcp``."""
    kind = _PURPOSES.get(purpose)
    if kind is None:
        raise Http404("No such service-account purpose.")
    form: Any = (GcpProjectForm if kind == PURPOSE_GCP else ServiceAccountKeyForm)(
        request.POST, request.FILES
    )
    if form.is_valid():
        try:
            result = service_accounts.service_account_key_set(
                user=request.user,
                purpose=kind,
                key_text=form.cleaned_data["key_text"],
                project_number=form.cleaned_data.get("project_number", ""),
            )
        except InvalidServiceAccountKeyError as exc:
            form.add_error(None, str(exc))
        else:
            what = "Google service account" if kind == PURPOSE_GOOGLE_SA else "GCP project"
            messages.success(
                request,
                f"{'Replaced' if result.replaced else 'Added'} the {what} "
                f"({result.key.client_email}).",
            )
            return redirect("integrations:service_accounts")
    messages.error(request, "The key was not saved: see the form below.")
    if kind == PURPOSE_GCP:
        return _service_accounts_page(request, gcp_form=form)
    return _service_accounts_page(request, google_sa_form=form)


@login_required
@require_http_methods(["GET", "POST"])
def service_account_delete(request: AuthenticatedHttpRequest, id: int) -> HttpResponse:
    """GET: the confirmation; POST: delete."""
    key = selectors.service_account_key_for_user(user=request.user, id=id)
    what = "Google service account" if key.purpose == PURPOSE_GOOGLE_SA else "GCP project"
    if request.method == "GET":
        return render(
            request,
            "integrations/confirm_delete.html",
            {
                "settings_tab": "service_accounts",
                "title": f"Delete the {what}?",
                "body": (
                    f"This deletes the key of {key.client_email} from this server; apps "
                    "that need it will not run until you upload one again. The key stays "
                    "valid at Google: delete it in the Google Cloud console (IAM & Admin → "
                    "Service accounts → Keys) if nothing else uses it."
                ),
                "button": f"Delete the {what}",
                "cancel_url": reverse("integrations:service_accounts"),
            },
        )
    email = key.client_email
    service_accounts.service_account_key_delete(key=key)
    messages.success(request, f"Deleted the {what} ({email}).")
    return redirect("integrations:service_accounts")
