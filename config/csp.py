"""The Content-Security-Policy's ``form-action``, completed with where Connect leads.

Connect, Add Permissions and Reconnect are form POSTs answered with a redirect to the
provider's authorization endpoint, and Chromium checks ``form-action`` on the
redirects of a form submission too: with ``form-action 'self'`` alone, every Connect to
a provider on another origin is blocked. Providers are data (staff add them in the
admin), so the list cannot be a setting: it is added per response, from the cached
provider definitions, to the policy Django's ContentSecurityPolicyMiddleware sends.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from integrations.providers import registry


class FormActionMiddleware:
    """Place after ``django.middleware.csp.ContentSecurityPolicyMiddleware`` (so that it
    sees the response first). Only HTML pages get the longer policy (only a page
    submits forms); a view's own ``csp_override`` is left alone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.SECURE_CSP
        if (
            policy
            and "form-action" in policy
            and not hasattr(response, "_csp_config")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            extra = [o for o in registry.authorization_origins() if o not in policy["form-action"]]
            if extra:
                response._csp_config = {  # type: ignore[attr-defined]
                    **policy,
                    "form-action": [*policy["form-action"], *extra],
                }
        return response
