"""Staff pages. A token never appears here, not even masked: a connection shows only
an 8-hex-digit fingerprint of its access token."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from integrations import app_authorization, app_settings
from integrations.core.provider_definitions import PRESETS, DefinitionError, validate_definition
from integrations.errors import InvalidWebhookEndpointError
from integrations.events.delivery import delivery_redeliver
from integrations.events.emit import EVENT_TYPES
from integrations.events.endpoints import (
    check_url,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from integrations.models import (
    AppAuthorization,
    AuditEvent,
    Connection,
    Event,
    ProviderDefinition,
    ProviderHealth,
    Secret,
    ServiceAccountKey,
    UserOAuthClient,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.providers import registry
from integrations.providers.definitions import (
    CHECKED_FIELDS,
    provider_definition_check,
    provider_definition_from_preset,
    provider_definition_set_secret,
)

_PROVIDER_NAMES = {"google": "Google", "x": "X", "discord": "Discord", "gcp": "Google Cloud"}


def audit_summary(
    *, kind: str, label: str, ok: bool, error_code: str, provider: str, account: str
) -> str:
    """One line saying what an audit event was, from its kind, outcome, error code,
    provider and account (never ``detail``'s values, never a credential)."""
    name = _PROVIDER_NAMES.get(provider, provider)
    whose = f" for {account}" if account else ""
    why = error_code.replace("_", " ") if error_code else "no reason given"
    if error_code.startswith("http_"):
        why = f"provider answered {error_code[5:]}"
    if kind == "refresh_succeeded":
        return f"Refreshed {name} token{whose}".replace("  ", " ")
    if kind == "refresh_failed":
        return f"Refresh failed{whose}: {why}"
    if kind in ("disconnect", "api_disconnect"):
        via = " through the API" if kind == "api_disconnect" else ""
        if ok:
            return f"Disconnected {name}{whose}{via}".replace("  ", " ")
        return f"Disconnected{whose}{via}; revoke failed ({why})"
    if kind == "connect":
        return f"Connected {name}{whose}" if ok else f"Connect failed{whose}: {why}"
    text = f"{label}{' ' + name if name else ''}{whose}"
    return text if ok else f"{text}: failed ({why})"


class NamedBlankValuesFilter(admin.AllValuesFieldListFilter):
    """Django's filter by each distinct value, with the empty one named: as is, an empty
    provider or error code becomes a link with no text (unusable, and an accessibility
    failure)."""

    def choices(self, changelist: Any) -> Any:
        for choice in super().choices(changelist):
            if choice.get("display") == "":
                choice = {**choice, "display": "(none)"}
            yield choice


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "user",
        "provider",
        "account_email",
        "status",
        "capabilities",
        "expires_at",
        "last_error_code",
        "token_fingerprint",
        "updated_at",
    )
    list_filter = ("provider", "status")
    search_fields = ("user__email", "account_email", "account_uid")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    # The encrypted columns are excluded outright: not even ciphertext is shown.
    fields = (
        "user",
        "provider",
        "account_uid",
        "account_email",
        "status",
        "capabilities",
        "scopes",
        "expires_at",
        "token_fingerprint",
        "has_refresh_token",
        "last_used_at",
        "last_refreshed_at",
        "next_refresh_at",
        "refresh_failures",
        "backoff_until",
        "attempts_in_window",
        "last_error_code",
        "reconnect_notified_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        # A provider refusing our client breaks every connection of it: say so on top.
        for health in ProviderHealth.objects.filter(ok=False):
            messages.error(
                request,
                f"{health.provider}: the provider refuses this server's OAuth client "
                f"({health.error_code}) since {health.first_failure_at:%Y-%m-%d %H:%M} UTC. "
                "Check the client ID and secret; users have not been emailed.",
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="Capabilities")
    def capabilities(self, obj: Connection) -> str:
        cat = registry.catalogue()
        keys = cat.granted_capabilities(obj.provider, obj.scopes)
        return ", ".join(cat.effective_capabilities(keys)) or "—"

    @admin.display(boolean=True, description="Refresh token stored")
    def has_refresh_token(self, obj: Connection) -> bool:
        return obj.has_refresh_token

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "what_happened", "provider", "user", "ok")
    list_filter = (
        "kind",
        "ok",
        ("provider", NamedBlankValuesFilter),
        ("error_code", NamedBlankValuesFilter),
    )
    search_fields = ("user__email", "account", "error_code")
    list_select_related = ("user",)
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in AuditEvent._meta.fields]

    @admin.display(description="What happened", ordering="kind")
    def what_happened(self, obj: AuditEvent) -> str:
        return audit_summary(
            kind=obj.kind,
            label=obj.get_kind_display(),
            ok=obj.ok,
            error_code=obj.error_code,
            provider=obj.provider,
            account=obj.account,
        )

    # Append-only: staff read it, nobody edits or deletes it here.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(ProviderHealth)
class ProviderHealthAdmin(admin.ModelAdmin):
    """Provider-level refresh problems (our client refused): for staff, not users."""

    list_display = (
        "provider",
        "ok",
        "error_code",
        "failures",
        "first_failure_at",
        "last_failure_at",
        "last_success_at",
    )
    list_filter = ("ok",)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in ProviderHealth._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AppAuthorization)
class AppAuthorizationAdmin(admin.ModelAdmin):
    """Which app each user allowed to use what (keys and connection ids, no value).
    Read-only: users allow on the app page and remove on their Settings pages; staff
    may delete a row (the app's next run asks the user again), audited as the users'
    own removals are."""

    list_display = ("app", "user", "kind", "key", "connection", "version", "created_at")
    list_filter = ("kind",)
    search_fields = ("app", "key", "user__email")
    list_select_related = ("user", "connection")
    fields = ("user", "app", "kind", "key", "connection", "version", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: AppAuthorization) -> None:
        app_authorization.app_authorizations_remove_by_staff(
            rows=[obj], by_staff_id=request.user.pk
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AppAuthorization]) -> None:
        app_authorization.app_authorizations_remove_by_staff(
            rows=queryset.select_related("user"), by_staff_id=request.user.pk
        )


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    """Keys and fingerprints only: the encrypted value is not even listed."""

    list_display = ("key", "user", "fingerprint", "updated_at")
    search_fields = ("key", "user__email")
    list_select_related = ("user",)
    fields = ("user", "key", "fingerprint", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ProviderDefinitionForm(forms.ModelForm):
    client_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The platform's client secret (managed mode). Write-only: leave empty to "
        "keep the stored one.",
    )

    class Meta:
        model = ProviderDefinition
        fields = [
            f.name
            for f in ProviderDefinition._meta.fields
            if f.editable
            and f.name not in ("id", "last_checked_at", "last_check_ok", "last_check_report")
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            validate_definition(data)
        except DefinitionError as exc:
            raise forms.ValidationError(str(exc)) from exc
        instance = self.instance
        endpoints_changed = any(name in self.changed_data for name in CHECKED_FIELDS)
        if data.get("enabled") and (
            not instance.pk or not instance.last_check_ok or endpoints_changed
        ):
            raise forms.ValidationError(
                "Save it disabled, run “Check” on it, then enable it: a definition is "
                "enabled only after its endpoints were reached."
            )
        return data


@admin.register(ProviderDefinition)
class ProviderDefinitionAdmin(admin.ModelAdmin):
    """Providers as data. Start from a preset; check before enabling."""

    form = ProviderDefinitionForm
    list_display = ("name", "slug", "enabled", "managed", "allow_user_clients", "last_check")
    list_filter = ("enabled", "allow_user_clients")
    search_fields = ("name", "slug")
    actions = ["run_check"]
    readonly_fields = ("callback_url", "last_checked_at", "last_check_ok", "last_check_report")
    change_list_template = "admin/integrations/providerdefinition/change_list.html"

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        extra_context = {
            **(extra_context or {}),
            "presets": [(slug, p["name"]) for slug, p in PRESETS.items()],
        }
        return super().changelist_view(request, extra_context)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        preset = request.GET.get("preset")
        if preset in PRESETS:
            return provider_definition_from_preset(preset=preset)
        return super().get_changeform_initial_data(request)

    @admin.display(description="Redirect URI to register at the provider")
    def callback_url(self, obj: ProviderDefinition) -> str:
        if not obj.slug:
            return "—"
        path = reverse("integrations:oauth_callback", kwargs={"provider_id": obj.slug})
        return app_settings.site_url() + path

    @admin.display(boolean=True, description="Managed client")
    def managed(self, obj: ProviderDefinition) -> bool:
        return bool(obj.client_id and obj.client_secret_encrypted)

    @admin.display(description="Last check")
    def last_check(self, obj: ProviderDefinition) -> str:
        if not obj.last_checked_at:
            return "never"
        return f"{'ok' if obj.last_check_ok else 'FAILED'} {obj.last_checked_at:%Y-%m-%d %H:%M}"

    def save_model(
        self, request: HttpRequest, obj: ProviderDefinition, form: Any, change: bool
    ) -> None:
        if change and any(name in form.changed_data for name in CHECKED_FIELDS):
            obj.last_check_ok = False
        super().save_model(request, obj, form, change)
        secret = form.cleaned_data.get("client_secret")
        if secret:
            provider_definition_set_secret(definition=obj, secret=secret)
        registry.definitions_changed()

    @admin.action(description="Check the selected definitions (discovery, endpoints)")
    def run_check(self, request: HttpRequest, queryset: Any) -> None:
        for definition in queryset:
            report = provider_definition_check(definition=definition)
            level = messages.SUCCESS if report.ok else messages.ERROR
            self.message_user(
                request, f"{definition.name}: " + "; ".join(report.lines), level=level
            )


@admin.register(UserOAuthClient)
class UserOAuthClientAdmin(admin.ModelAdmin):
    """Users' own clients: who brought which client ID. The secret is never shown."""

    list_display = ("provider", "user", "client_id", "updated_at")
    list_filter = ("provider",)
    search_fields = ("user__email", "client_id")
    fields = ("user", "provider", "client_id", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ServiceAccountKey)
class ServiceAccountKeyAdmin(admin.ModelAdmin):
    """Who uploaded which service account, for what. Never the key, not even its
    ciphertext: the encrypted column is left out of every page."""

    list_display = (
        "user",
        "purpose",
        "client_email",
        "project_id",
        "project_number",
        "fingerprint",
        "created_at",
        "refused_code",
    )
    list_filter = ("purpose", ("refused_at", admin.EmptyFieldListFilter))
    search_fields = ("user__email", "client_email", "project_id", "project_number")
    list_select_related = ("user",)
    fields = (
        "user",
        "purpose",
        "client_email",
        "project_id",
        "project_number",
        "private_key_id",
        "fingerprint",
        "created_at",
        "refused_at",
        "refused_code",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- webhooks -------------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    """URL, event types (none ticked: every type), description, enabled; the secret is
    never a field (made by the service, shown once)."""

    event_types = forms.MultipleChoiceField(
        choices=[(t, f"{t}: {doc}") for t, doc in EVENT_TYPES.items()],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "event_types", "description", "enabled")

    def clean_url(self) -> str:
        try:
            return check_url(str(self.cleaned_data["url"]))
        except InvalidWebhookEndpointError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints through the services: created with a signing secret shown once, on the
    next page (never stored in clear, never in a message or the session); changes and
    deletions audited; **Rotate signing secret** shows the new one once."""

    form = WebhookEndpointForm
    list_display = ("url", "types", "enabled", "last_success_at", "failing_since", "disabled_at")
    list_filter = ("enabled",)
    search_fields = ("url", "description")
    readonly_fields = (
        "created_at",
        "updated_at",
        "last_success_at",
        "failing_since",
        "disabled_at",
        "disabled_reason",
    )
    actions = ["rotate_secret"]

    @admin.display(description="event types")
    def types(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) or "all"

    def _shown_once(
        self, request: HttpRequest, *, endpoint: WebhookEndpoint, secret: str, title: str
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "endpoint": endpoint,
            "secret": secret,
        }
        response = TemplateResponse(
            request, "admin/integrations/webhookendpoint/created.html", context
        )
        add_never_cache_headers(response)
        return response

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "POST" and self.has_add_permission(request):
            form = WebhookEndpointForm(request.POST)
            if form.is_valid():
                try:
                    made = webhook_endpoint_create(
                        url=form.cleaned_data["url"],
                        event_types=form.cleaned_data["event_types"],
                        description=form.cleaned_data["description"],
                        enabled=form.cleaned_data["enabled"],
                        by=_staff(request),
                    )
                except InvalidWebhookEndpointError as exc:
                    self.message_user(request, str(exc), level=messages.ERROR)
                else:
                    return self._shown_once(
                        request,
                        endpoint=made.endpoint,
                        secret=made.secret,
                        title="Webhook endpoint created",
                    )
        return super().add_view(request, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool
    ) -> None:
        # Only changes reach here (add_view makes new endpoints through the service).
        webhook_endpoint_update(
            endpoint=obj,
            url=form.cleaned_data["url"],
            event_types=form.cleaned_data["event_types"],
            description=form.cleaned_data["description"],
            enabled=form.cleaned_data["enabled"],
            by=_staff(request),
        )

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj, by=_staff(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint, by=_staff(request))

    @admin.action(description="Rotate the signing secret (shown once)")
    def rotate_secret(
        self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select one endpoint.", level=messages.ERROR)
            return None
        endpoint = queryset.get()
        secret = webhook_endpoint_rotate_secret(endpoint=endpoint, by=_staff(request))
        return self._shown_once(
            request, endpoint=endpoint, secret=secret, title="Signing secret rotated"
        )


def _staff(request: HttpRequest) -> Any:
    return request.user if request.user.is_authenticated else None


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """The outbox: what was told, read-only (payloads hold no credential)."""

    list_display = ("uid", "type", "user_id", "created_at")
    list_filter = ("type",)
    search_fields = ("uid", "type")
    fields = ("uid", "type", "user_id", "created_at", "data")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "at", "status_code", "latency_ms", "error_code", "redelivery")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Each event's delivery to each endpoint, its attempts (number, status code,
    latency, error code: never the body or signature) and **Redeliver** (audited)."""

    list_display = (
        "id",
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "last_status_code",
        "last_error_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("event__uid", "endpoint__url")
    fields = (
        "event",
        "endpoint",
        "status",
        "attempts",
        "failures",
        "last_status_code",
        "last_error_code",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    readonly_fields = fields
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    @admin.display(description="event", ordering="event__type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = 0
        for row in queryset:
            delivery_redeliver(delivery=row, by=_staff(request))
            count += 1
        self.message_user(request, f"{count} deliveries will be sent again.")
