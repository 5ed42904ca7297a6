"""The sandbox's endpoints: consent, token, revoke, userinfo and two fake Google APIs.

Google's error shapes:
https://cloud.google.com/apis/design/errors#http_mapping
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote_plus

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET
from oauth2_provider.views import AuthorizationView, RevokeTokenView, TokenView

from .forms import ConsentForm
from .scopes import IDENTITY_SCOPES, describe_scope
from .selectors import access_token_for_bearer, granted_scopes, token_request_user
from .services import token_request_record
from .validators import RevocationTokenUnknownError

SHEETS_READ_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + s
    for s in ("spreadsheets.readonly", "spreadsheets", "drive.readonly", "drive")
)
GMAIL_READ_SCOPES = frozenset(
    "https://www.googleapis.com/auth/" + s
    for s in ("gmail.readonly", "gmail.modify", "gmail.compose", "gmail.metadata")
)
SAMPLE_VALUES = [["Name", "Score"], ["Ada", "36"], ["Grace", "42"]]


def _google_options(params: Any) -> dict[str, str]:
    return {
        "access_type": str(params.get("access_type", "")),
        "include_granted_scopes": str(params.get("include_granted_scopes", "")),
    }


@method_decorator(never_cache, name="dispatch")
class SandboxAuthorizationView(AuthorizationView):
    """Google's consent screen, on DOT's authorization endpoint (login required)."""

    template_name = "sandbox/authorize.html"
    form_class = ConsentForm

    def get_initial(self) -> dict[str, Any]:
        initial = super().get_initial()
        initial["requested_scope"] = initial.pop("scope", "")
        initial.update(_google_options(self.request.GET))
        return initial

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        if not isinstance(form, ConsentForm):
            return context  # an error page
        application = context.get("application")
        earlier = (
            granted_scopes(user=self.request.user, application=application) if application else []
        )
        context["scope_rows"] = [
            {"widget": widget, "info": describe_scope(str(widget.data["value"]))}
            for widget in form["scope"]
        ]
        context["identity_scopes"] = [
            describe_scope(s) for s in form.requested_scopes if s in IDENTITY_SCOPES
        ]
        context["earlier_scopes"] = set(earlier)
        if self.request.GET.get("include_granted_scopes", "").lower() == "true":
            context["already_granted"] = [
                describe_scope(s) for s in earlier if s not in form.requested_scopes
            ]
        context["login_hint"] = self.request.GET.get("login_hint", "")
        return context

    def create_authorization_response(
        self, request: HttpRequest, scopes: str, credentials: dict, allow: bool
    ) -> Any:
        # oauthlib copies the credentials onto its request, where the validator
        # stores them on the grant.
        params = request.POST if request.method == "POST" else request.GET
        credentials = {**credentials, **_google_options(params)}
        return super().create_authorization_response(request, scopes, credentials, allow)


def _client_id_of(request: HttpRequest) -> str:
    """The client_id of a token request: HTTP Basic (RFC 6749 §2.3.1) or the body."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return unquote_plus(decoded.partition(":")[0])
    return str(request.POST.get("client_id", ""))


# Codes, verifiers, refresh tokens and secrets stay out of error reports.
_sensitive_post = method_decorator(sensitive_post_parameters(), name="post")


@_sensitive_post
class SandboxTokenView(TokenView):
    """DOT's token endpoint, counting every request per grant type."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        # DOT narrows the list to password and client_secret; widen it again.
        request.sensitive_post_parameters = "__ALL__"  # type: ignore[attr-defined]
        try:
            body = json.loads(response.content or b"{}")
        except ValueError:
            body = {}
        outcome = "ok" if response.status_code == 200 else str(body.get("error", "error"))
        user = token_request_user(
            access_token=body.get("access_token"),
            refresh_token=request.POST.get("refresh_token"),
            code=request.POST.get("code"),
        )
        token_request_record(
            grant_type=str(request.POST.get("grant_type", "")),
            client_id=_client_id_of(request),
            outcome=outcome,
            user=user,
        )
        return response


@_sensitive_post
class SandboxRevokeTokenView(RevokeTokenView):
    """DOT's revoke endpoint answering like Google's for tokens it does not know."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().post(request, *args, **kwargs)
        except RevocationTokenUnknownError:
            return JsonResponse(
                {"error": "invalid_token", "error_description": "Token expired or revoked"},
                status=400,
            )


def _google_error(code: int, status: str, message: str, **extra: Any) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": code, "message": message, "status": status, **extra}}
    )
    response.status_code = code
    if code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return response


def _unauthenticated() -> JsonResponse:
    return _google_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    )


def _insufficient_scopes() -> JsonResponse:
    return _google_error(
        403,
        "PERMISSION_DENIED",
        "Request had insufficient authentication scopes.",
        details=[
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
            }
        ],
    )


@never_cache
@require_GET
def userinfo(request: HttpRequest) -> JsonResponse:
    """OpenID Connect userinfo, as Google's: needs a live token with openid or email."""
    token = access_token_for_bearer(authorization=request.headers.get("Authorization", ""))
    if token is None:
        response = JsonResponse(
            {"error": "invalid_request", "error_description": "Invalid Credentials"}, status=401
        )
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    if not set(token.scope.split()) & set(IDENTITY_SCOPES):
        return JsonResponse(
            {"error": "insufficient_scope", "error_description": "Insufficient Permission"},
            status=403,
        )
    user = token.user
    return JsonResponse({"sub": f"sandbox-{user.pk}", "email": user.email, "email_verified": True})


@never_cache
@require_GET
def sheets_values_get(request: HttpRequest, spreadsheet_id: str, range: str) -> JsonResponse:
    """``spreadsheets.values.get`` on a fixed small sheet, whatever the spreadsheet id."""
    token = access_token_for_bearer(authorization=request.headers.get("Authorization", ""))
    if token is None:
        return _unauthenticated()
    if not set(token.scope.split()) & SHEETS_READ_SCOPES:
        return _insufficient_scopes()
    a1_range = range if "!" in range else f"Sheet1!{range}"
    return JsonResponse({"range": a1_range, "majorDimension": "ROWS", "values": SAMPLE_VALUES})


@never_cache
@require_GET
def gmail_get_profile(request: HttpRequest, user_id: str) -> JsonResponse:
    """``users.getProfile`` for ``me`` (or the token's own address)."""
    token = access_token_for_bearer(authorization=request.headers.get("Authorization", ""))
    if token is None:
        return _unauthenticated()
    if not set(token.scope.split()) & GMAIL_READ_SCOPES:
        return _insufficient_scopes()
    email = token.user.email
    if user_id not in ("me", email):
        return _google_error(403, "PERMISSION_DENIED", f"Delegation denied for {user_id}")
    return JsonResponse(
        {"emailAddress": email, "messagesTotal": 3, "threadsTotal": 2, "historyId": "1"}
    )
