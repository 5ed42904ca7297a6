"""API endpoints: thin, like the pages. Upload answers 201 with the version, 422 with
the problems, 403 for another publisher's or a reserved namespace, 413 for a body over
its limit; never 500 for anything a client sends."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_registry import selectors, services
from apps_registry.api.authentication import signed_in_user
from apps_registry.api.parsers import BoundedJSONParser, ManifestTextParser, PayloadTooLargeError
from apps_registry.api.serializers import (
    AppSerializer,
    RejectedSerializer,
    UploadRequestSerializer,
    VersionSerializer,
)
from apps_registry.limits import MAX_ENVELOPE_BYTES, MAX_MANIFEST_BYTES, content_length

_EXAMPLE = "namespace: acme\nname: report\nintegrations:\n  - key: google.sheets.readonly\n"


class ManifestUploadView(APIView):
    parser_classes = [ManifestTextParser, BoundedJSONParser]

    @extend_schema(
        operation_id="manifests_upload",
        summary="Upload an inf.yml",
        description=(
            "Stores the manifest as the next version of the app it names "
            "(`namespace/name`; without `namespace`, the uploader's default namespace). "
            "The namespace must be the uploader's: a new one is claimed by its first "
            "uploader, a reserved one (`APPS_RESERVED_NAMESPACES`, or marked by staff) is "
            "staff's. A new app is owned by the uploader; its owner, its namespace's owners "
            "and staff upload versions. "
            "The body is the manifest as `text/plain` (at most 64 KiB), or JSON "
            '`{"text": "..."}`. A manifest that fails validation is kept as an invalid '
            "version when it names its app (422 with `number`), or refused without "
            "being kept (422 without)."
        ),
        request={
            "text/plain": OpenApiTypes.STR,
            "application/json": UploadRequestSerializer,
        },
        responses={
            201: VersionSerializer,
            400: OpenApiResponse(description="Malformed JSON, or no `text`"),
            401: OpenApiResponse(description="No token, or a bad or revoked one"),
            403: OpenApiResponse(
                description="`namespace_owned`: the namespace belongs to other publishers "
                "(the detail names the owners to ask); `namespace_reserved`: only staff "
                "upload into it"
            ),
            413: OpenApiResponse(description="The body is over its size limit"),
            415: OpenApiResponse(description="Neither text/plain nor application/json"),
            422: OpenApiResponse(
                response=PolymorphicProxySerializer(
                    component_name="UploadRefused",
                    serializers=[VersionSerializer, RejectedSerializer],
                    resource_type_field_name=None,
                ),
                description="The manifest was refused: `errors` lists the problems",
            ),
        },
        examples=[OpenApiExample("text/plain", value=_EXAMPLE, media_type="text/plain")],
    )
    def post(self, request: Request) -> Response:
        plain = request.content_type.split(";")[0].strip().lower() == "text/plain"
        limit = MAX_MANIFEST_BYTES if plain else MAX_ENVELOPE_BYTES
        if content_length(request.META) > limit:
            # Refused from the header: not a byte of the body is read.
            raise PayloadTooLargeError(
                f"The request body is over {limit:,} bytes; a manifest may be at most "
                f"{MAX_MANIFEST_BYTES:,} bytes (64 KiB)."
            )
        data = request.data
        text: str | bytes
        if isinstance(data, bytes):
            text = data
        elif plain:
            text = b""  # an empty body
        else:
            body = UploadRequestSerializer(data=data if isinstance(data, dict) else {})
            body.is_valid(raise_exception=True)
            text = body.validated_data["text"]
        # AppOwnershipError (403) and ManifestRejectedError (422, ``RejectedSerializer``'s
        # shape) are answered by ``api.errors.exception_handler``.
        version = services.manifest_upload(user=signed_in_user(request), text=text)
        answer = VersionSerializer(version, context={"request": request}).data
        code = status.HTTP_201_CREATED if version.valid else status.HTTP_422_UNPROCESSABLE_ENTITY
        return Response(answer, status=code)


class AppDetailView(APIView):
    @extend_schema(
        operation_id="apps_retrieve",
        summary="An app and its versions",
        description="For the app's owner and staff: every version, newest first, "
        "with its problems, and what the current version requests.",
        responses={
            200: AppSerializer,
            401: OpenApiResponse(description="No token, or a bad or revoked one"),
            403: OpenApiResponse(description="The app belongs to another user"),
            404: OpenApiResponse(description="No such app"),
        },
    )
    def get(self, request: Request, namespace: str, name: str) -> Response:
        # AppOwnershipError: 403, by ``api.errors.exception_handler``.
        app = selectors.app_for_user(
            user=signed_in_user(request), namespace=namespace, name=name, write=True
        )
        # The raw texts are not part of the answer: up to 64 KiB each.
        versions: Any = selectors.versions_of_app(app=app).defer("raw_text", "parsed")
        return Response(AppSerializer(app, context={"versions": versions}).data)
