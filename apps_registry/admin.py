"""Staff pages: apps with their versions and what each requests, manifest versions
(read-only), an upload form that calls the upload service, namespaces (owners, reserved,
verified), runners (their scope), and API tokens, runner tokens and platform credentials
(the hash is never shown; a new token is shown once, on the page that made it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from apps_registry import selectors, services
from apps_registry.display import describe_problem
from apps_registry.errors import (
    AppOwnershipError,
    ManifestRejectedError,
    NamespaceOwnedError,
    NamespaceReservedError,
    PlatformCredentialError,
    RunnerTokenError,
)
from apps_registry.forms import AdminManifestUploadForm
from apps_registry.manifest import SLUG_RE
from apps_registry.models import (
    ApiToken,
    App,
    ManifestVersion,
    Namespace,
    PlatformCredential,
    Runner,
    RunnerToken,
)
from apps_registry.serialization import problems_from_json, requirements_from_json
from integrations.types import AuthenticatedHttpRequest


def _requested(parsed: Any) -> str:
    """What a manifest requests, as a line: ``google.sheets, google.drive.readonly
    (optional) · FAL_KEY``."""
    parts = []
    for field in ("integrations", "secrets"):
        reqs = requirements_from_json(parsed, field)
        shown = ", ".join(f"{r.key}{' (optional)' if r.optional else ''}" for r in reqs)
        if shown:
            parts.append(shown)
    return " · ".join(parts) or "—"


def _requirements_html(parsed: Any, field: str) -> str:
    reqs = requirements_from_json(parsed, field)
    if not reqs:
        return "—"
    return format_html(
        "<ul>{}</ul>",
        format_html_join(
            "",
            "<li><code>{}</code>{} — {}</li>",
            (
                (r.key, " (optional)" if r.optional else " (required)", r.description or "—")
                for r in reqs
            ),
        ),
    )


def _problems_html(data: Any) -> str:
    problems = problems_from_json(data)
    if not problems:
        return "—"
    return format_html(
        "<ol>{}</ol>",
        format_html_join("", "<li>{}</li>", ((describe_problem(p),) for p in problems)),
    )


class ManifestVersionInline(admin.TabularInline):
    model = ManifestVersion
    fk_name = "app"
    fields = ("number", "valid", "uploaded_by", "created_at", "problem_count")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-number",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("uploaded_by").defer("raw_text")

    @admin.display(description="errors / warnings")
    def problem_count(self, obj: ManifestVersion) -> str:
        return f"{len(obj.errors)} / {len(obj.warnings)}"


@admin.register(App)
class AppAdmin(admin.ModelAdmin):
    list_display = ("slug", "owner", "current", "requested", "updated_at")
    search_fields = ("namespace", "name", "owner__email", "owner__username")
    list_select_related = ("owner", "current_version")
    list_filter = (("current_version", admin.EmptyFieldListFilter),)
    fields = (
        "namespace",
        "name",
        "owner",
        "current_version",
        "title",
        "requested_integrations",
        "requested_secrets",
        "created_at",
        "updated_at",
    )
    readonly_fields = (
        "namespace",
        "name",
        "current_version",
        "title",
        "requested_integrations",
        "requested_secrets",
        "created_at",
        "updated_at",
    )
    raw_id_fields = ("owner",)
    inlines = [ManifestVersionInline]
    change_list_template = "admin/apps_registry/app/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # apps come from uploads: see "Upload a manifest"

    @admin.display(description="current version", ordering="current_version__number")
    def current(self, obj: App) -> str:
        return str(obj.current_version.number) if obj.current_version else "none valid"

    @admin.display(description="requests")
    def requested(self, obj: App) -> str:
        return _requested(obj.current_version.parsed if obj.current_version else {})

    def _parsed(self, obj: App) -> Any:
        return obj.current_version.parsed if obj.current_version else {}

    @admin.display(description="title")
    def title(self, obj: App) -> str:
        return str(self._parsed(obj).get("title") or "—")

    @admin.display(description="integrations (current version)")
    def requested_integrations(self, obj: App) -> str:
        return _requirements_html(self._parsed(obj), "integrations")

    @admin.display(description="secrets (current version)")
    def requested_secrets(self, obj: App) -> str:
        return _requirements_html(self._parsed(obj), "secrets")

    def get_urls(self) -> list[URLPattern]:
        upload = path(
            "upload/",
            self.admin_site.admin_view(self.upload_view),
            name="apps_registry_app_upload",
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request: AuthenticatedHttpRequest) -> HttpResponse:
        """Upload an inf.yml through ``services.manifest_upload`` as the staff user."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        form = AdminManifestUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.manifest_upload(
                    user=request.user,
                    text=form.cleaned_data["manifest"],
                    app=form.cleaned_data.get("app"),
                )
            except ManifestRejectedError as exc:
                for problem in exc.problems:
                    form.add_error(None, describe_problem(problem))
            except (AppOwnershipError, NamespaceOwnedError, NamespaceReservedError) as exc:
                form.add_error(None, str(exc))
            else:
                if version.valid:
                    messages.success(
                        request, f"Uploaded {version.app.slug}: version {version.number}."
                    )
                    target = reverse("admin:apps_registry_app_change", args=[version.app_id])
                else:
                    messages.warning(
                        request,
                        f"Kept {version.app.slug} version {version.number}, but it is not "
                        f"valid ({len(version.errors)} problems), so it is not current.",
                    )
                    target = reverse(
                        "admin:apps_registry_manifestversion_change", args=[version.pk]
                    )
                return HttpResponseRedirect(target)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload a manifest",
            "form": form,
        }
        return TemplateResponse(request, "admin/apps_registry/app/upload.html", context)


@admin.register(ManifestVersion)
class ManifestVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "app", "number", "valid", "uploaded_by", "created_at")
    list_filter = ("valid",)
    search_fields = ("app__namespace", "app__name")
    list_select_related = ("app", "uploaded_by")
    fields = (
        "app",
        "number",
        "valid",
        "uploaded_by",
        "created_at",
        "requested",
        "error_list",
        "warning_list",
        "raw_text_display",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # versions are history: viewed, never edited

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="requests")
    def requested(self, obj: ManifestVersion) -> str:
        return _requested(obj.parsed)

    @admin.display(description="errors")
    def error_list(self, obj: ManifestVersion) -> str:
        return _problems_html(obj.errors)

    @admin.display(description="warnings")
    def warning_list(self, obj: ManifestVersion) -> str:
        return _problems_html(obj.warnings)

    @admin.display(description="raw text")
    def raw_text_display(self, obj: ManifestVersion) -> str:
        return format_html('<pre class="manifest-raw">{}</pre>', obj.raw_text)


class ShowOnceTokenAdmin(admin.ModelAdmin):
    """The add page of a token model: the token is made and shown once, on that response
    only (never stored, never put in a message or the session). Subclasses name the
    form, the titles, the template context name of the row, and how a token is made;
    the templates are ``admin/<app>/<model>/add.html`` and ``created.html``."""

    create_form: type[forms.Form]
    add_title: str
    created_title: str
    row_name: str

    def create_token(self, request: HttpRequest, data: dict[str, Any]) -> tuple[Any, str]:
        raise NotImplementedError

    def create_initial(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.create_form(request.POST or None, initial=self.create_initial(request))
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": self.add_title,
            "form": form,
        }
        templates = f"admin/{opts.app_label}/{opts.model_name}"
        if request.method == "POST" and form.is_valid():
            try:
                row, token = self.create_token(request, form.cleaned_data)
            except (RunnerTokenError, PlatformCredentialError) as exc:
                form.add_error(None, str(exc))
                return TemplateResponse(request, f"{templates}/add.html", context)
            context.update({"title": self.created_title, self.row_name: row, "token": token})
            response = TemplateResponse(request, f"{templates}/created.html", context)
            add_never_cache_headers(response)
            return response
        return TemplateResponse(request, f"{templates}/add.html", context)


class ApiTokenCreateForm(forms.Form):
    user_email = forms.EmailField(label="User's email")
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. 'GitHub Actions'.")

    def clean_user_email(self) -> Any:
        user = selectors.user_by_email(email=self.cleaned_data["user_email"])
        if user is None:
            raise forms.ValidationError("No user has this email address.")
        return user


@admin.register(ApiToken)
class ApiTokenAdmin(ShowOnceTokenAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at")
    search_fields = ("name", "prefix", "user__email")
    list_select_related = ("user",)
    # token_hash is never shown.
    fields = ("user", "name", "prefix", "created_at", "last_used_at")
    readonly_fields = fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke by deleting; a token is never edited

    create_form = ApiTokenCreateForm
    add_title, created_title, row_name = "Create an API token", "API token created", "api_token"

    def create_token(self, request: HttpRequest, data: dict[str, Any]) -> tuple[Any, str]:
        return services.api_token_create(user=data["user_email"], name=data["name"])


def _namespace_list(text: str) -> list[str]:
    return [n for n in text.replace(",", " ").split() if n]


class NamespaceAdminForm(forms.ModelForm):
    class Meta:
        model = Namespace
        fields = ("name", "owners", "reserved", "verified")

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if not SLUG_RE.fullmatch(name):
            raise forms.ValidationError(
                "A namespace is 1 to 64 lowercase letters, digits, '-', '_' or '.', starting "
                "and ending with a letter or digit (as in an inf.yml)."
            )
        return name


@admin.register(Namespace)
class NamespaceAdmin(admin.ModelAdmin):
    """Namespaces: staff reserve names, assign owners (each change audited) and mark
    publishers verified."""

    form = NamespaceAdminForm
    list_display = ("name", "owner_list", "reserved", "verified", "app_count", "created_at")
    list_filter = ("reserved", "verified")
    search_fields = ("name", "owners__email")
    filter_horizontal = ("owners",)
    readonly_fields = ("created_by", "created_at")

    def get_queryset(self, request: HttpRequest) -> Any:
        apps = (
            App.objects.filter(namespace=OuterRef("name"))
            .order_by()
            .values("namespace")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return (
            super()
            .get_queryset(request)
            .prefetch_related("owners")
            .annotate(apps_count=Coalesce(Subquery(apps), 0))
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # A namespace's name is its apps' first part: renaming it would orphan them.
        return (*self.readonly_fields, "name") if obj is not None else self.readonly_fields

    @admin.display(description="owners")
    def owner_list(self, obj: Namespace) -> str:
        return ", ".join(o.email or o.get_username() for o in obj.owners.all()) or "—"

    @admin.display(description="apps", ordering="apps_count")
    def app_count(self, obj: Any) -> int:
        return int(obj.apps_count)

    def save_model(self, request: Any, obj: Namespace, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        # Owners through the service, which audits each one added or removed.
        services.namespace_owners_set(
            namespace=form.instance, owners=form.cleaned_data["owners"], by=request.user
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


class RunnerTokenCreateForm(forms.Form):
    """A token for a new runner (its name and scope), or, with ``runner``, a second
    token for an existing one (rotation: the current token stays valid until revoked)."""

    runner = forms.ModelChoiceField(
        queryset=Runner.objects.all(),
        required=False,
        help_text="Rotate: a new token for this runner (its other token keeps working until "
        "you revoke it). Leave empty to create a new runner below.",
    )
    name = forms.CharField(
        max_length=100, required=False, help_text="A new runner, e.g. 'runner-eu-1'."
    )
    namespaces = forms.CharField(
        required=False,
        max_length=2000,
        help_text="A new runner's scope: the namespaces whose apps it may serve, e.g. 'acme beta'.",
    )
    all_namespaces = forms.BooleanField(
        required=False, help_text="A new runner's scope: every namespace."
    )
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Empty: the token never expires."
    )

    def clean(self) -> Any:
        data = super().clean() or {}
        if data.get("runner") is None:
            if not data.get("name"):
                raise forms.ValidationError("Pick a runner to rotate, or name a new runner.")
            if not _namespace_list(data.get("namespaces") or "") and not data.get("all_namespaces"):
                raise forms.ValidationError(
                    "Give the new runner a scope: its namespaces, or all namespaces."
                )
        elif data.get("name") or data.get("namespaces") or data.get("all_namespaces"):
            raise forms.ValidationError(
                "A rotation keeps the runner's scope: leave the name and scope empty (change "
                "the scope on the runner's page)."
            )
        return data


class RunnerAdminForm(forms.ModelForm):
    namespaces_text = forms.CharField(
        label="namespaces",
        required=False,
        max_length=2000,
        help_text="The namespaces whose apps it may serve, e.g. 'acme beta'.",
    )

    class Meta:
        model = Runner
        fields = ("all_namespaces",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["namespaces_text"].initial = " ".join(self.instance.namespaces)

    def clean(self) -> Any:
        data = super().clean() or {}
        try:
            services.runner_scope_names(
                namespaces=_namespace_list(data.get("namespaces_text") or ""),
                all_namespaces=bool(data.get("all_namespaces")),
            )
        except RunnerTokenError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(Runner)
class RunnerAdmin(admin.ModelAdmin):
    """Runners and their scope. A runner is made with its first token (Runner tokens →
    Add); here its scope changes, and "Issue a new token" starts a rotation."""

    form = RunnerAdminForm
    list_display = ("name", "scope", "live_tokens", "created_by", "created_at")
    search_fields = ("name",)
    readonly_fields = ("name", "created_by", "created_at", "tokens")
    actions = ["issue_token"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("tokens")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made with their first token: Runner tokens → Add

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the audit log names runners: revoke their tokens instead

    @admin.display(description="live tokens")
    def live_tokens(self, obj: Runner) -> int:
        return sum(1 for t in obj.tokens.all() if _token_state(t) == "live")

    @admin.display(description="tokens")
    def tokens(self, obj: Runner) -> str:
        return (
            format_html_join(
                "",
                "<div><code>{}…</code> {} (expires {}, last used {})</div>",
                (
                    (t.prefix, _token_state(t), t.expires_at or "never", t.last_used_at or "never")
                    for t in obj.tokens.all()
                ),
            )
            or "—"
        )

    def save_model(self, request: Any, obj: Runner, form: Any, change: bool) -> None:
        services.runner_scope_set(
            runner=obj,
            namespaces=_namespace_list(form.cleaned_data.get("namespaces_text") or ""),
            all_namespaces=form.cleaned_data["all_namespaces"],
        )

    @admin.action(description="Issue a new token (rotation) for the selected runner")
    def issue_token(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        runners = list(queryset[:2])
        if len(runners) != 1:
            self.message_user(request, "Select one runner.", level=messages.WARNING)
            return None
        target = reverse("admin:apps_registry_runnertoken_add")
        return HttpResponseRedirect(f"{target}?runner={runners[0].pk}")


def _staff(request: HttpRequest) -> Any:
    """The signed-in staff user of an admin page (``admin_view`` has checked it)."""
    return request.user if request.user.is_authenticated else None


def _token_state(row: RunnerToken | PlatformCredential) -> str:
    """A runner token's or a platform credential's state: revoked, expired or live."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= timezone.now():
        return "expired"
    return "live"


@admin.register(RunnerToken)
class RunnerTokenAdmin(ShowOnceTokenAdmin):
    """Runner tokens: made here and shown once; only a hash is kept. Revoke, not delete,
    so the audit log's runner names keep their meaning."""

    list_display = (
        "runner",
        "prefix",
        "scope",
        "state",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_by",
        "created_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("runner", "created_by")
    search_fields = ("runner__name", "prefix")
    fields = (
        "runner",
        "prefix",
        "scope",
        "state",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="scope")
    def scope(self, obj: RunnerToken) -> str:
        return obj.runner.scope

    @admin.display(description="state")
    def state(self, obj: RunnerToken) -> str:
        return _token_state(obj)

    @admin.action(description="Revoke the selected runner tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            services.runner_token_revoke(runner_token=row)
        self.message_user(request, f"Revoked {queryset.count()} runner token(s).")

    create_form = RunnerTokenCreateForm
    add_title, created_title = "Create a runner token", "Runner token created"
    row_name = "runner_token"

    def create_initial(self, request: HttpRequest) -> dict[str, Any]:
        # "Issue a new token" on a runner lands here with ?runner=<id>.
        runner = request.GET.get("runner", "")
        return {"runner": int(runner)} if runner.isdigit() and len(runner) < 19 else {}

    def create_token(self, request: HttpRequest, data: dict[str, Any]) -> tuple[Any, str]:
        days = data.get("expires_in_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        if data.get("runner") is not None:
            return services.runner_token_issue(
                runner=data["runner"], expires_at=expires_at, created_by=_staff(request)
            )
        return services.runner_token_create(
            name=data["name"],
            namespaces=_namespace_list(data.get("namespaces") or ""),
            all_namespaces=bool(data.get("all_namespaces")),
            expires_at=expires_at,
            created_by=_staff(request),
        )


class PlatformCredentialCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which platform backend, e.g. 'acme-backend'.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in PlatformCredential.SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="connections:read lists and gets connections; connections:write forces "
        "refreshes and disconnects. Write does not imply read.",
    )
    expires_in_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, help_text="Empty: it never expires."
    )


@admin.register(PlatformCredential)
class PlatformCredentialAdmin(ShowOnceTokenAdmin):
    """Platform credentials for the connections API: made here and shown once; only a
    hash is kept. Revoke, not delete, so the audit log's names keep their meaning."""

    list_display = (
        "name",
        "prefix",
        "scope_list",
        "state",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_by",
        "created_at",
    )
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    list_select_related = ("created_by",)
    search_fields = ("name", "prefix")
    fields = (
        "name",
        "prefix",
        "scope_list",
        "state",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="scopes")
    def scope_list(self, obj: PlatformCredential) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="state")
    def state(self, obj: PlatformCredential) -> str:
        return _token_state(obj)

    @admin.action(description="Revoke the selected platform credentials")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            services.platform_credential_revoke(credential=row)
        self.message_user(request, f"Revoked {queryset.count()} platform credential(s).")

    create_form = PlatformCredentialCreateForm
    add_title, created_title = "Create a platform credential", "Platform credential created"
    row_name = "credential"

    def create_token(self, request: HttpRequest, data: dict[str, Any]) -> tuple[Any, str]:
        days = data.get("expires_in_days")
        return services.platform_credential_create(
            name=data["name"],
            scopes=data["scopes"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            created_by=_staff(request),
        )
