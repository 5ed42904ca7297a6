"""Staff pages: apps with their versions and what each requests, manifest versions
(read-only), an upload form that calls the upload service, and API tokens (the hash is
never shown; a new token is shown once, on the page that made it)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join

from apps_registry import selectors, services
from apps_registry.display import describe_problem
from apps_registry.errors import AppOwnershipError, ManifestRejectedError
from apps_registry.forms import AdminManifestUploadForm
from apps_registry.models import ApiToken, App, ManifestVersion, RunnerToken
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
            except AppOwnershipError as exc:
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

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.create_form(request.POST or None)
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": self.add_title,
            "form": form,
        }
        templates = f"admin/{opts.app_label}/{opts.model_name}"
        if request.method == "POST" and form.is_valid():
            row, token = self.create_token(request, form.cleaned_data)
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


class RunnerTokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Which runner, e.g. 'runner-eu-1'.")


@admin.register(RunnerToken)
class RunnerTokenAdmin(ShowOnceTokenAdmin):
    """Runner tokens: made here and shown once; only a hash is kept. Revoke, not delete,
    so the audit log's runner names keep their meaning."""

    list_display = ("name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    fields = ("name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected runner tokens")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for row in queryset:
            services.runner_token_revoke(runner_token=row)
        self.message_user(request, f"Revoked {queryset.count()} runner token(s).")

    create_form = RunnerTokenCreateForm
    add_title, created_title = "Create a runner token", "Runner token created"
    row_name = "runner_token"

    def create_token(self, request: HttpRequest, data: dict[str, Any]) -> tuple[Any, str]:
        return services.runner_token_create(name=data["name"], created_by=request.user)
