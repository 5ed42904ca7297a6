"""The site's account adapter (allauth): allauth's, except where noted."""

from __future__ import annotations

import logging

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpRequest

logger = logging.getLogger(__name__)


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        """allauth raises ImproperlyConfigured (a 500) when X-Forwarded-For holds fewer
        addresses than TRUSTED_PROXY_COUNT: a request that did not pass every proxy
        (sent to an inner one directly) or a count set too high. Whoever sent it, its
        client address is unknown: refused, as allauth refuses a request without one,
        and told to the deployer."""
        try:
            return super().get_client_ip(request)
        except ImproperlyConfigured:
            logger.warning(
                "Refused a request with %d X-Forwarded-For address(es): TRUSTED_PROXY_COUNT "
                "expects more. Is the site reachable without passing every proxy?",
                len(request.headers.get("x-forwarded-for", "").split(",")),
            )
            raise PermissionDenied("Unable to determine client IP address") from None
