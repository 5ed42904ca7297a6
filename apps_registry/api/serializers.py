"""Shapes of the API's requests and answers (and of the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps_registry import services
from apps_registry.models import App, ManifestVersion
from integrations.models import Connection


class UploadRequestSerializer(serializers.Serializer):
    text = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        help_text="The inf.yml, as text (at most 64 KiB of UTF-8).",
    )


class ProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="1-based")
    column = serializers.IntegerField(help_text="1-based, in characters")
    path = serializers.CharField(help_text="Where in the document, e.g. integrations[2].key")
    message = serializers.CharField()


class VersionSerializer(serializers.Serializer):
    """A version as the upload answers it. Expects ``version.app`` loaded."""

    app = serializers.SerializerMethodField(help_text="namespace/name")
    namespace = serializers.CharField(source="app.namespace")
    namespace_default = serializers.SerializerMethodField(
        help_text='True when the manifest names no namespace (none, or ""): `namespace` '
        "is then the uploader's default one"
    )
    name = serializers.CharField(source="app.name")
    number = serializers.IntegerField()
    valid = serializers.BooleanField()
    current = serializers.SerializerMethodField(help_text="Whether it is the app's current version")
    created_at = serializers.DateTimeField()
    warnings = ProblemSerializer(many=True)
    # DRF's metaclass takes declared fields off the class: Serializer.errors stays.
    errors = ProblemSerializer(many=True)  # type: ignore[assignment]
    url = serializers.SerializerMethodField(help_text="The app's page")

    def get_app(self, version: ManifestVersion) -> str:
        return version.app.slug

    def get_current(self, version: ManifestVersion) -> bool:
        return version.app.current_version_id == version.pk

    def get_namespace_default(self, version: ManifestVersion) -> bool:
        return services.namespace_defaulted(version=version)

    def get_url(self, version: ManifestVersion) -> str:
        path = reverse(
            "apps_registry:app",
            kwargs={"namespace": version.app.namespace, "name": version.app.name},
        )
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class RejectedSerializer(serializers.Serializer):
    """An upload refused without being kept (too large, not UTF-8, names no app)."""

    detail = serializers.CharField()
    valid = serializers.BooleanField(default=False)
    # DRF's metaclass takes declared fields off the class: Serializer.errors stays.
    errors = ProblemSerializer(many=True)  # type: ignore[assignment]


class VersionSummarySerializer(serializers.Serializer):
    number = serializers.IntegerField()
    valid = serializers.BooleanField()
    current = serializers.SerializerMethodField()
    uploaded_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    warnings = ProblemSerializer(many=True)
    # DRF's metaclass takes declared fields off the class: Serializer.errors stays.
    errors = ProblemSerializer(many=True)  # type: ignore[assignment]

    def get_current(self, version: ManifestVersion) -> bool:
        return self.context.get("current_version_id") == version.pk

    def get_uploaded_by(self, version: ManifestVersion) -> str | None:
        return version.uploaded_by.get_username() if version.uploaded_by else None


class RequirementSerializer(serializers.Serializer):
    key = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    optional = serializers.BooleanField()


class AppSerializer(serializers.Serializer):
    """An app with its versions, newest first (``context["versions"]``)."""

    namespace = serializers.CharField()
    name = serializers.CharField()
    owner = serializers.SerializerMethodField()
    current_version = serializers.SerializerMethodField(
        help_text="The current version's number; null while no upload was valid"
    )
    title = serializers.SerializerMethodField()
    integrations = serializers.SerializerMethodField()
    secrets = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    versions = serializers.SerializerMethodField()

    def get_owner(self, app: App) -> str:
        return app.owner.get_username()

    def get_current_version(self, app: App) -> int | None:
        return app.current_version.number if app.current_version else None

    def _parsed(self, app: App) -> dict[str, Any]:
        return app.current_version.parsed if app.current_version else {}

    def get_title(self, app: App) -> str | None:
        return self._parsed(app).get("title")

    def _requirements(self, app: App, field: str) -> list[dict[str, Any]]:
        entries = self._parsed(app).get(field) or []
        return RequirementSerializer(entries, many=True).data  # type: ignore[return-value]

    @extend_schema_field(RequirementSerializer(many=True))
    def get_integrations(self, app: App) -> list[dict[str, Any]]:
        return self._requirements(app, "integrations")

    @extend_schema_field(RequirementSerializer(many=True))
    def get_secrets(self, app: App) -> list[dict[str, Any]]:
        return self._requirements(app, "secrets")

    @extend_schema_field(VersionSummarySerializer(many=True))
    def get_versions(self, app: App) -> list[dict[str, Any]]:
        return VersionSummarySerializer(  # type: ignore[return-value]
            self.context["versions"],
            many=True,
            context={"current_version_id": app.current_version_id},
        ).data


# --- the connections API ----------------------------------------------------------------


class ConnectionUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(allow_blank=True)


class ConnectionAccountSerializer(serializers.Serializer):
    email = serializers.CharField(allow_blank=True, help_text="The account's email, if known")
    subject = serializers.CharField(help_text="The account's id at the provider (`sub`)")


class ConnectionSerializer(serializers.Serializer):
    """A connection as the connections API answers it: never a token value, a refresh
    token or a client secret (tokens only through the run environment API). Expects
    ``connection.user`` loaded; ``context["catalogue"]`` names the capabilities."""

    id = serializers.IntegerField()
    user = serializers.SerializerMethodField()
    provider = serializers.CharField()
    account = serializers.SerializerMethodField()
    capabilities = serializers.SerializerMethodField(
        help_text="The capability keys the granted scopes cover, e.g. google.sheets.readonly"
    )
    status = serializers.ChoiceField(choices=Connection.Status.choices)
    error_code = serializers.CharField(
        source="last_error_code",
        allow_blank=True,
        help_text="The last refresh's error code (empty after a success)",
    )
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="When the access token expires; null: it does not"
    )
    connected_at = serializers.DateTimeField(source="created_at")
    last_used_at = serializers.DateTimeField(
        allow_null=True, help_text="When a run was last given its token"
    )
    last_refreshed_at = serializers.DateTimeField(allow_null=True)
    is_default = serializers.BooleanField(
        help_text="The connection runs use when an app names none (per user and provider)"
    )

    @extend_schema_field(ConnectionUserSerializer)
    def get_user(self, connection: Connection) -> dict[str, Any]:
        return {"id": connection.user_id, "email": connection.user.email}

    @extend_schema_field(ConnectionAccountSerializer)
    def get_account(self, connection: Connection) -> dict[str, Any]:
        return {"email": connection.account_email, "subject": connection.account_uid}

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_capabilities(self, connection: Connection) -> list[str]:
        return sorted(
            self.context["catalogue"].granted_capabilities(
                connection.provider, connection.scopes or []
            )
        )
