"""``/api/v1/webhook-endpoints/``: staff's webhook endpoints (README "Webhooks"), with a
staff member's personal API token; another user's token is answered 403 ``staff_only``.
Thin: the views parse, call one service of ``integrations.events.endpoints``, answer.
The signing secret is in the answer of a create and of a rotation only."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_registry.api.authentication import signed_in_user
from apps_registry.errors import StaffOnlyError
from integrations.events import endpoints
from integrations.events.emit import EVENT_TYPES

_MAX_ID = 2**63 - 1


class IsStaff(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if not signed_in_user(request).is_staff:
            raise StaffOnlyError("webhook endpoints are staff's: use a staff member's API token")
        return True


class EndpointSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    description = serializers.CharField()
    event_types = serializers.ListField(
        child=serializers.CharField(), help_text="Empty: every event type"
    )
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    last_success_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text="The first failed attempt since the last success"
    )
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField(help_text='"failing": failing for 5 days')


class EndpointWithSecretSerializer(EndpointSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (whsec_...), shown this once: the receiver verifies "
        "with it (Standard Webhooks)"
    )


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret, shown this once")


class EndpointWriteSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    description = serializers.CharField(max_length=200, allow_blank=True, default="")
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        default=list,
        max_length=len(EVENT_TYPES),
        help_text="Empty: every event type",
    )
    enabled = serializers.BooleanField(default=True)


class EndpointPatchSerializer(EndpointWriteSerializer):
    url = serializers.CharField(max_length=2000, required=False)
    description = serializers.CharField(max_length=200, allow_blank=True, required=False)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        required=False,
        max_length=len(EVENT_TYPES),
    )
    enabled = serializers.BooleanField(required=False)


_COMMON: dict[int | str, Any] = {
    401: OpenApiResponse(description="No token, or a bad or revoked one"),
    403: OpenApiResponse(description="`staff_only`: the token's user is not staff"),
}
_ONE = {**_COMMON, 404: OpenApiResponse(description="No such endpoint")}
_BAD = OpenApiResponse(
    description="The body is malformed, or `invalid_webhook_endpoint`: the URL or the "
    "event types were refused"
)


def _body(request: Request) -> dict[str, Any]:
    return request.data if isinstance(request.data, dict) else {}


def _endpoint(id: int) -> Any:
    found = endpoints.webhook_endpoint_get(id=id) if 0 < id <= _MAX_ID else None
    if found is None:
        raise Http404("No such webhook endpoint.")
    return found


class EndpointListView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="Webhook endpoints",
        responses={200: EndpointSerializer(many=True), **_COMMON},
    )
    def get(self, request: Request) -> Response:
        return Response(EndpointSerializer(endpoints.webhook_endpoints(), many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Register a webhook endpoint",
        description="Events of `event_types` (empty: every type) are delivered to `url`, "
        "signed (Standard Webhooks). The answer carries the signing secret, shown once.",
        request=EndpointWriteSerializer,
        responses={201: EndpointWithSecretSerializer, 400: _BAD, **_COMMON},
    )
    def post(self, request: Request) -> Response:
        body = EndpointWriteSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        made = endpoints.webhook_endpoint_create(**body.validated_data, by=signed_in_user(request))
        answer = {**EndpointSerializer(made.endpoint).data, "secret": made.secret}
        return Response(
            answer, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )


class EndpointDetailView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="A webhook endpoint",
        responses={200: EndpointSerializer, **_ONE},
    )
    def get(self, request: Request, id: int) -> Response:
        return Response(EndpointSerializer(_endpoint(id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint",
        description="Enabling a disabled endpoint again starts its failing count anew.",
        request=EndpointPatchSerializer,
        responses={200: EndpointSerializer, 400: _BAD, **_ONE},
    )
    def patch(self, request: Request, id: int) -> Response:
        endpoint = _endpoint(id)
        body = EndpointPatchSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        changed = endpoints.webhook_endpoint_update(
            endpoint=endpoint, **body.validated_data, by=signed_in_user(request)
        )
        return Response(EndpointSerializer(changed).data)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        summary="Delete a webhook endpoint",
        description="With its deliveries and their attempts.",
        responses={204: None, **_ONE},
    )
    def delete(self, request: Request, id: int) -> Response:
        endpoints.webhook_endpoint_delete(endpoint=_endpoint(id), by=signed_in_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretView(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="Rotate a webhook endpoint's signing secret",
        description="The new secret signs every request from now; it is shown this once.",
        request=None,
        responses={200: SecretSerializer, **_ONE},
    )
    def post(self, request: Request, id: int) -> Response:
        secret = endpoints.webhook_endpoint_rotate_secret(
            endpoint=_endpoint(id), by=signed_in_user(request)
        )
        return Response({"secret": secret}, headers={"Cache-Control": "no-store"})
