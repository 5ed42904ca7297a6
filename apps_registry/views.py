"""The apps pages: your apps, an app (with readiness), and the upload page.

Views parse input, call one service or selector, render or redirect. Apps come
through ``selectors.app_for_user``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from apps_registry import selectors, services
from apps_registry.checklist import build_checklist
from apps_registry.display import annotate_lines, describe_problem
from apps_registry.errors import (
    AppOwnershipError,
    ManifestRejectedError,
    NamespaceOwnedError,
    NamespaceOwnerError,
    NamespaceReservedError,
)
from apps_registry.forms import ManifestUploadForm, NamespaceOwnerForm
from apps_registry.limits import MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES, content_length
from apps_registry.manifest import ManifestProblem
from apps_registry.serialization import problems_from_json, requirements_from_json
from integrations import selectors as integrations_selectors
from integrations.app_authorization import AllowItem, app_authorization_allow
from integrations.errors import InvalidSecretError
from integrations.providers import registry as integrations_registry
from integrations.secrets import secret_set
from integrations.types import AuthenticatedHttpRequest
from integrations.views.forms import SecretForm

if TYPE_CHECKING:
    from apps_registry.models import App, ManifestVersion


@login_required
def app_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    apps = selectors.apps_of_owner(user=request.user)
    namespaces = selectors.namespaces_of_owner(user=request.user)
    return render(request, "apps_registry/list.html", {"apps": apps, "namespaces": namespaces})


def app_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """Anyone sees an app's manifest; a signed-in user sees it as a checklist: each need
    (capability, secret, their Allow) done or missing, with the action that does it
    (``checklist.build_checklist``)."""
    app = selectors.app_for_user(user=request.user, namespace=namespace, name=name)
    version = app.current_version
    parsed = version.parsed if version is not None else {}
    publisher = selectors.publisher_of(app=app)
    can_change = selectors.user_can_change_app(user=request.user, app=app, publisher=publisher)
    readiness = (
        selectors.readiness_for(user=request.user, app=app)
        if request.user.is_authenticated
        else None
    )
    to_allow = (
        selectors.to_allow_for(user=request.user, app=app, readiness=readiness)
        if readiness is not None and request.user.is_authenticated
        else None
    )
    context: dict[str, Any] = {
        "app": app,
        "title": app_title(app=app, parsed=parsed),
        "checklist": (
            build_checklist(readiness, to_allow=to_allow, cat=integrations_registry.catalogue())
            if readiness is not None
            else None
        ),
        "version": version,
        "manifest": parsed,
        "integrations": requirements_from_json(parsed, "integrations"),
        "secrets": requirements_from_json(parsed, "secrets"),
        "readiness": readiness,
        # None: authorization is "declared"; () when everything there is allowed.
        "to_allow": to_allow,
        "can_change": can_change,
        "publisher": publisher,
        "owns_namespace": publisher is not None
        and request.user.is_authenticated
        and any(o.pk == request.user.pk for o in publisher.owners.all()),
        "versions": (
            list(selectors.versions_of_app(app=app).defer("raw_text", "parsed")[:20])
            if can_change
            else []
        ),
        "here": request.path,
    }
    return render(request, "apps_registry/app.html", context)


def app_title(*, app: App, parsed: dict[str, Any]) -> str:
    """What the pages call an app: its manifest's ``title``, else its name."""
    title = parsed.get("title")
    return title.strip() if isinstance(title, str) and title.strip() else app.name


def _posted_item(value: str) -> AllowItem | None:
    """An item of the Allow form: ``capability:<key>:<connection id or empty>`` or
    ``secret:<key>:`` (``ToAllow.form_value``); ``None`` when malformed."""
    kind, _, rest = value.partition(":")
    key, _, connection = rest.partition(":")
    if not key or (connection and not (connection.isascii() and connection.isdecimal())):
        return None
    return AllowItem(kind=kind, key=key, connection_id=int(connection) if connection else None)


@require_POST
@login_required
def app_allow(request: AuthenticatedHttpRequest, namespace: str, name: str) -> HttpResponse:
    """Allow the app to use what the form listed (the user's own connections, secrets
    and credentials, as the page showed them). Only items the app's current version
    declares and that are still there and not allowed yet are allowed: the posted list
    narrows that set, never widens it (a page that went stale allows nothing new)."""
    app = selectors.app_for_user(user=request.user, namespace=namespace, name=name)
    readiness = selectors.readiness_for(user=request.user, app=app)
    pending = (
        selectors.to_allow_for(user=request.user, app=app, readiness=readiness)
        if readiness is not None
        else None
    )
    if not pending or app.current_version is None:
        messages.info(request, f"There was nothing left to allow for {app.slug}.")
        return redirect("apps_registry:app", namespace=app.namespace, name=app.name)
    posted = {i for v in request.POST.getlist("item") if (i := _posted_item(v)) is not None}
    items = [
        AllowItem(kind=i.kind, key=i.key, connection_id=i.connection_id)
        for i in pending
        if AllowItem(kind=i.kind, key=i.key, connection_id=i.connection_id) in posted
    ]
    if not items:
        messages.warning(
            request,
            "What this app can use has changed since the page was shown: review it below "
            "and allow again.",
        )
        return redirect("apps_registry:app", namespace=app.namespace, name=app.name)
    app_authorization_allow(
        user=request.user, app=app.slug, version=app.current_version.number, items=items
    )
    shown = [i.text for i in pending if AllowItem(i.kind, i.key, i.connection_id) in items]
    title = app_title(app=app, parsed=app.current_version.parsed)
    messages.success(request, f"Allowed {title} to use: {', '.join(shown)}.")
    return redirect("apps_registry:app", namespace=app.namespace, name=app.name)


# Error reports (500 pages, admin emails) mask the write-only value.
@sensitive_post_parameters("value")
@require_POST
@login_required
def app_secret_add(request: AuthenticatedHttpRequest, namespace: str, name: str) -> HttpResponse:
    """The app page's inline form: set a secret the app's current version declares and
    the user has not set yet (``integrations.secrets.secret_set``, its rules), then back
    to the app page. Replacing a secret is Settings → Secrets' job, so a stale page
    never overwrites one. The value is never echoed, not even in an error."""
    app = selectors.app_for_user(user=request.user, namespace=namespace, name=name)
    back = redirect("apps_registry:app", namespace=app.namespace, name=app.name)
    key = request.POST.get("key", "")
    declared = app.current_version is not None and any(
        r.key == key for r in selectors.secrets_handed_out(app.current_version.parsed)
    )
    if not declared:
        messages.error(request, f"{app.slug} declares no such secret: nothing was saved.")
        return back
    if key in integrations_selectors.secret_keys_for_user(user=request.user):
        messages.info(request, f"{key} is already set; replace it under Settings → Secrets.")
        return back
    form = SecretForm(request.POST)
    if not form.is_valid():
        errors = [str(e) for errors in form.errors.values() for e in errors]
        messages.error(request, f"{key} was not saved: {' '.join(errors)}")
        return back
    try:
        secret_set(user=request.user, key=key, value=form.cleaned_data["value"])
    except InvalidSecretError as exc:
        messages.error(request, f"{key} was not saved: {exc}")
        return back
    messages.success(request, f"Added {key}.")
    return back


def hhmm(moment: datetime) -> str:
    """A moment as the pages show a time of today: ``14:05 CET`` (the user's zone,
    ``integrations.time_zone``; UTC until one is chosen)."""
    return timezone.localtime(moment).strftime("%H:%M %Z")


@require_POST
@login_required
def retry_now(
    request: AuthenticatedHttpRequest, namespace: str, name: str, connection_id: int
) -> HttpResponse:
    """Retry now (the app page's button for a temporarily unavailable connection): one
    refresh of the user's connection, past its backoff, at most once a minute
    (``services.connection_retry_now``); back to the app page with what happened."""
    app = selectors.app_for_user(user=request.user, namespace=namespace, name=name)
    outcome = services.connection_retry_now(user=request.user, connection_id=connection_id)
    provider = integrations_registry.catalogue().provider_name(outcome.provider)
    if outcome.ok:
        messages.success(request, f"{provider} answered: the connection works again.")
    elif outcome.limited_until is not None:
        messages.warning(
            request,
            f"You asked a moment ago: try again after {hhmm(outcome.limited_until)}.",
        )
    else:
        when = hhmm(outcome.next_attempt_at) if outcome.next_attempt_at else "the next run"
        messages.error(request, f"Still failing: {outcome.code}; next attempt at {when}.")
    return redirect("apps_registry:app", namespace=app.namespace, name=app.name)


def manifest_format(request: HttpRequest) -> HttpResponse:
    """docs/manifests.md, the manifest format, served as text from the checkout (404
    where the docs are not shipped)."""
    try:
        text = (Path(settings.BASE_DIR) / "docs" / "manifests.md").read_text("utf-8")
    except OSError as exc:
        raise Http404("The manifest format is not installed here.") from exc
    return render(request, "apps_registry/manifest_format.html", {"text": text})


def _refuse_large_bodies(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 413 to a POST whose ``Content-Length`` is over the form limit, before its
    body is read (by the CSRF check or the form)."""

    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST" and content_length(request.META) > MAX_ENVELOPE_BYTES:
            refusal = (
                f"The upload is too large: a manifest may be at most {MAX_MANIFEST_BYTES:,} "
                "bytes (64 KiB)."
            )
            context = {"form": ManifestUploadForm(), "refusal": refusal}
            return render(request, "apps_registry/upload.html", context, status=413)
        return view(request, *args, **kwargs)

    return wrapped


@csrf_exempt  # checked by csrf_protect below, once the size check has passed
@require_http_methods(["GET", "POST"])
@login_required
@_refuse_large_bodies
@csrf_protect
def upload(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Paste or choose an inf.yml; on success, go to the app's page with the warnings.

    The CSRF check runs after the size check (``csrf_exempt`` outside,
    ``csrf_protect`` inside), so that an oversized body is refused before the CSRF
    check would read it.
    """
    if request.method != "POST":
        return render(request, "apps_registry/upload.html", {"form": ManifestUploadForm()})
    form = ManifestUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "apps_registry/upload.html", {"form": form})
    manifest = form.cleaned_data["manifest"]
    try:
        version = services.manifest_upload(user=request.user, text=manifest)
    except (AppOwnershipError, NamespaceOwnedError, NamespaceReservedError) as exc:
        # The text stays in the form, with who to ask.
        return _upload_problems(request, manifest, [], refusal=str(exc), status=403)
    except ManifestRejectedError as exc:
        return _upload_problems(request, manifest, exc.problems)
    if not version.valid:
        return _upload_problems(
            request, manifest, problems_from_json(version.errors), version=version
        )
    where = (
        f" (the manifest names no namespace: {version.app.namespace} is your default one)"
        if services.namespace_defaulted(version=version)
        else ""
    )
    messages.success(request, f"Uploaded {version.app.slug}: version {version.number}{where}.")
    for warning in problems_from_json(version.warnings):
        messages.warning(request, f"Warning: {describe_problem(warning)}")
    return redirect("apps_registry:app", namespace=version.app.namespace, name=version.app.name)


def _upload_problems(
    request: HttpRequest,
    manifest: str | bytes,
    problems: list[ManifestProblem],
    *,
    version: ManifestVersion | None = None,
    refusal: str = "",
    status: int = 200,
) -> HttpResponse:
    """The upload page again, with the text's lines and each problem beside its line,
    and the text in the form to fix and send again."""
    if isinstance(manifest, bytes):
        text = manifest.decode("utf-8", "replace").removeprefix("\ufeff")
    else:
        text = manifest
    # A refused giant is not echoed back.
    shown = text if len(text.encode("utf-8", "replace")) <= MAX_MANIFEST_BYTES else ""
    context = {
        "form": ManifestUploadForm(initial={"text": shown}),
        "problems": problems,
        "lines": annotate_lines(shown, problems) if shown and problems else [],
        "version": version,
        "refusal": refusal,
    }
    return render(request, "apps_registry/upload.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def namespace_detail(request: AuthenticatedHttpRequest, name: str) -> HttpResponse:
    """A namespace's owners, for its owners only (404 for anyone else): add a co-owner by
    email, remove one (never the last)."""
    namespace = selectors.namespace_for_owner(user=request.user, name=name)
    form = NamespaceOwnerForm()
    status, refusal = 200, ""
    if request.method == "POST":
        try:
            if "remove" in request.POST:
                owner_id = request.POST.get("remove", "")
                if not owner_id.isdigit() or len(owner_id) > 18:
                    raise NamespaceOwnerError("That user is not an owner of this namespace.")
                services.namespace_owner_remove(
                    namespace=namespace, by=request.user, owner_id=int(owner_id)
                )
                messages.success(request, "Owner removed.")
                if owner_id == str(request.user.pk):
                    return redirect("apps_registry:list")
                return redirect("apps_registry:namespace", name=namespace.name)
            form = NamespaceOwnerForm(request.POST)
            if form.is_valid():
                added = services.namespace_owner_add(
                    namespace=namespace, by=request.user, email=form.cleaned_data["email"]
                )
                messages.success(request, f"{added.email} is now an owner of {namespace.name}.")
                return redirect("apps_registry:namespace", name=namespace.name)
            status = 400
        except NamespaceOwnerError as exc:
            if form.is_bound:
                form.add_error(None, str(exc))
            else:
                refusal = str(exc)
            status = 400
    context = {
        "namespace": namespace,
        "owners": list(selectors.owners_of(namespace=namespace)),
        "apps": list(selectors.apps_in_namespace(namespace=namespace)),
        "form": form,
        "refusal": refusal,
    }
    return render(request, "apps_registry/namespace.html", context, status=status)
