"""ALL HTTP to providers, in the manner of authlib's ``OAuth2Client``: the refresh grant
(RFC 6749 §6), revocation (RFC 7009), userinfo (the callback's identity and the run
path's check), OIDC discovery and the definition check's reachability, google-auth's
transport; over one pooled session per thread, with connect and read timeouts on every
request.

Every request goes to public addresses only (``PublicAddressAdapter``, mounted for http and
https on the session): a URL the server fetches on staff's or a user's say must not reach
this machine's or its network's services (SSRF). ``INTEGRATIONS_ALLOW_PRIVATE_URLS`` lifts
this for development and tests, whose sandbox and fakes listen on 127.0.0.1.

A provider's quirk is a compliance hook (authlib's ``register_compliance_hook``), not an
``if`` in a caller: ``register_compliance_hook(key, kind, hook)``, where ``key`` is a
provider id or a quirk named in ``ProviderConfig.quirks``, and ``hook`` turns an
``Answer`` (status and decoded JSON body) into the answer to read, before it is read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import google.auth.exceptions
import google.auth.transport
import requests
from requests.adapters import HTTPAdapter
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from integrations import app_settings
from integrations.core.provider_config import ProviderConfig
from integrations.core.tokens import TokenResponseError, TokenSet, parse_token_response
from integrations.errors import (
    PrivateAddressError,
    ProviderUnavailableError,
    error_from_response,
)

logger = logging.getLogger(__name__)

_local = threading.local()


class _ProviderSession(requests.Session):
    # Hosts whose environment settings (proxies, CA bundle) are remembered, at most.
    ENV_SETTINGS_HOSTS = 64

    def __init__(self) -> None:
        super().__init__()
        self._env_settings: dict[tuple[str, str], Any] = {}

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", app_settings.http_timeout())
        return super().request(str(method), str(url), *args, **kwargs)

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        """requests reads the proxy variables (``no_proxy`` matched against the host) and
        the CA bundle variables from the environment on every request: a tenth of a
        refresh's CPU. Read once per scheme and host, and per thread (the session's)."""
        if proxies or stream is not None or verify is not None or cert is not None or not url:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(str(url))
        key = (parts.scheme, parts.netloc)
        if key not in self._env_settings:
            if len(self._env_settings) >= self.ENV_SETTINGS_HOSTS:
                self._env_settings.clear()
            self._env_settings[key] = super().merge_environment_settings(url, {}, None, None, None)
        merged = self._env_settings[key]
        return {**merged, "proxies": dict(merged["proxies"])}

    # allauth uses `with get_requests_session() as s:`; closing would drop the pool.
    def __exit__(self, *args: Any) -> None:
        return None


class AddressRefusedError(InvalidIPAddress):
    """requests' form of a refused address (a ``requests.RequestException``, so that
    allauth's callback and every ``except RequestException`` treat it as a failed
    request); ``error`` is the family's ``PrivateAddressError``, which the functions
    below raise or report."""

    def __init__(self, error: PrivateAddressError) -> None:
        super().__init__(str(error))
        self.error = error


class PublicAddressAdapter(IPFilterAdapter):
    """Connects to public addresses only, for every request made through it.

    Saleor's requests-hardened does the work: it resolves the host, refuses loopback,
    private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud metadata
    address, fe80::/10), unspecified, multicast, reserved, carrier-grade NAT and their
    IPv4-mapped IPv6 forms, and then connects to the address it checked (the pool is
    keyed by that IP; ``Host``, SNI and certificate checks keep the name), so a name
    that resolves to a public address for the check and to a private one for the
    connection (DNS rebinding) gets nowhere. Each redirect comes back through here.

    ``INTEGRATIONS_ALLOW_PRIVATE_URLS`` is read per request, as every app setting is.
    The refusal comes before any connection, so it reads the same whatever the port:
    a URL's answer no longer tells which internal ports are open. Webhooks, or any other
    outbound request made on someone's say, go through ``session()`` to get the same.
    """

    def __init__(self, *, https: bool) -> None:
        super().__init__(is_https_proto=https)
        self.init_poolmanager(16, 64)

    def build_connection_pool_key_attributes(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        cert: str | tuple[str, str] | None = None,
    ) -> Any:
        if app_settings.allow_private_urls():
            return HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        try:
            return super().build_connection_pool_key_attributes(request, verify, cert)
        except InvalidIPAddress:
            host = urlsplit(str(request.url)).hostname or ""
            raise AddressRefusedError(PrivateAddressError(host=host)) from None


def session() -> requests.Session:
    """This thread's pooled session (requests sessions are not thread-safe to share),
    which reaches public addresses only (``PublicAddressAdapter``)."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = _ProviderSession()
        sess.mount("https://", PublicAddressAdapter(https=True))
        sess.mount("http://", PublicAddressAdapter(https=False))
        sess.headers["User-Agent"] = "integrations-hub/0.1"
        _local.session = sess
    return sess


# --- compliance hooks ---------------------------------------------------------------------

HookKind = Literal[
    "access_token_response",  # the callback's code exchange (allauth makes the request)
    "refresh_token_response",
    "revoke_token_response",
    "userinfo_response",  # the callback's identity
]


@dataclass(frozen=True)
class Answer:
    """A provider's answer as hooks see it: the HTTP status and the decoded JSON body
    (``None`` when the body is not JSON)."""

    status: int
    body: Any = None


Hook = Callable[[Answer], Answer]

_HOOKS: dict[tuple[str, HookKind], list[Hook]] = {}


def register_compliance_hook(key: str, kind: HookKind, hook: Hook) -> None:
    """Apply ``hook`` to every ``kind`` answer of the provider whose id is ``key``, or of
    every provider whose configuration names the quirk ``key`` (``ProviderConfig.quirks``)."""
    _HOOKS.setdefault((key, kind), []).append(hook)


def _hooked(config: ProviderConfig, kind: HookKind, answer: Answer) -> Answer:
    for key in dict.fromkeys((config.id, *config.quirks)):
        for hook in _HOOKS.get((key, kind), ()):
            answer = hook(answer)
    return answer


def _json(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _slack_error_with_http_200(answer: Answer) -> Answer:
    """Slack answers its errors with HTTP 200 and ``{"ok": false, "error": ...}``
    (https://api.slack.com/web#slack-web-api__evaluating-responses): an error answer."""
    if answer.status == 200 and isinstance(answer.body, dict) and answer.body.get("ok") is False:
        return replace(answer, status=400)
    return answer


# auth.revoke too: its failures also come with HTTP 200 (``{"ok": false}``).
_SLACK_KINDS: tuple[HookKind, ...] = (
    "access_token_response",
    "refresh_token_response",
    "revoke_token_response",
    "userinfo_response",
)
for _kind in _SLACK_KINDS:
    register_compliance_hook("slack", _kind, _slack_error_with_http_200)


# --- token endpoint -----------------------------------------------------------------------


def refresh_grant(
    config: ProviderConfig, refresh_token: str, *, now: datetime, scope: str | None = None
) -> TokenSet:
    """One refresh request (RFC 6749 §6); raises the classified ``IntegrationError``
    (RFC 6749 §5.2 errors through ``error_from_response``; ``ProviderUnavailableError``
    for timeouts, connection errors and answers that are not a token response)."""
    data = {**config.refresh_params, "grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        data["scope"] = scope
    auth = config.authenticate(data)
    try:
        resp = session().post(
            config.token_url, data=data, auth=auth, headers={"Accept": "application/json"}
        )
    except AddressRefusedError as exc:
        raise exc.error from None
    except requests.Timeout as exc:
        raise ProviderUnavailableError("token endpoint timed out", code="timeout") from exc
    except requests.RequestException as exc:
        raise ProviderUnavailableError(
            "token endpoint unreachable", code="connection_error"
        ) from exc
    answer = _hooked(config, "refresh_token_response", Answer(resp.status_code, _json(resp)))
    body = answer.body
    if answer.status != 200:
        raise error_from_response(answer.status, body)
    if isinstance(body, dict) and "error" in body and "access_token" not in body:
        # An error code and no token is an error, whatever the status (GitHub answers
        # its refresh errors with HTTP 200 too).
        raise error_from_response(400, body)
    if not isinstance(body, dict):
        raise ProviderUnavailableError("token endpoint answered no JSON", code="bad_response")
    try:
        return parse_token_response(
            body,
            now=now,
            scope_separator=config.scope_separator,
            default_lifetime=config.default_lifetime,
        )
    except TokenResponseError as exc:
        raise ProviderUnavailableError(str(exc), code="bad_response") from exc


def accepted_token_response(config: ProviderConfig, body: Any) -> Any:
    """The callback's token response (allauth made the request and read it: HTTP 200),
    after the provider's hooks; ``None`` when they make it an error answer."""
    answer = _hooked(config, "access_token_response", Answer(200, body))
    return answer.body if answer.status == 200 else None


# --- revocation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RevocationOutcome:
    ok: bool
    error_code: str = ""


def revoke(config: ProviderConfig, *, token: str, token_type_hint: str) -> RevocationOutcome:
    """RFC 7009 revocation at ``config.revoke_url``. Never raises: what went wrong is the
    outcome's ``error_code`` (the exception's class, the provider's ``error`` or
    ``http_<status>``)."""
    data = {"token": token, "token_type_hint": token_type_hint}
    auth = config.authenticate(data)
    try:
        resp = session().post(config.revoke_url, data=data, auth=auth)
    except AddressRefusedError as exc:
        return RevocationOutcome(ok=False, error_code=exc.error.code)
    except requests.RequestException as exc:
        return RevocationOutcome(ok=False, error_code=type(exc).__name__)
    answer = _hooked(config, "revoke_token_response", Answer(resp.status_code, _json(resp)))
    if answer.status == 200:
        return RevocationOutcome(ok=True)
    body = answer.body
    code = str(body.get("error", "")) if isinstance(body, dict) else ""
    return RevocationOutcome(ok=False, error_code=code[:40] or f"http_{answer.status}")


# --- userinfo -----------------------------------------------------------------------------

# The run path's check must not hold a run up for long: an unanswered one counts as accepted.
_VERIFY_TIMEOUT = (2.0, 5.0)


def token_accepted(
    config: ProviderConfig, access_token: str, *, connection_id: int | None = None
) -> bool:
    """Whether the provider's userinfo endpoint accepts the token. Only a 401 is a no:
    a 403 (a scope the endpoint wants and the grant lacks), a timeout or a 5xx is not a
    reason to withhold a token. ``connection_id`` only names it in the log."""
    try:
        resp = session().get(
            config.userinfo_url,
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=_VERIFY_TIMEOUT,
        )
    except AddressRefusedError:
        # No request was made: as unanswered, the token is not withheld for it.
        logger.warning("could not verify connection %s: not a public address", connection_id)
        return True
    except requests.RequestException:
        logger.info("could not verify connection %s: provider unreachable", connection_id)
        return True
    if resp.status_code == 401:
        logger.info("provider %s refused the token of connection %s", config.id, connection_id)
        return False
    return True


def fetch_userinfo(config: ProviderConfig, access_token: str) -> Any:
    """The userinfo answer naming the account (the callback's identity), after the
    provider's hooks; ``None`` when they make it an error answer. Raises ``requests``'
    errors (allauth's callback shows them as a failed connection)."""
    resp = session().get(config.userinfo_url, headers={"Authorization": f"Bearer {access_token}"})
    resp.raise_for_status()
    answer = _hooked(config, "userinfo_response", Answer(resp.status_code, resp.json()))
    return answer.body if answer.status == 200 else None


# --- discovery and reachability (the definition check) ------------------------------------


@dataclass(frozen=True)
class Fetched:
    """What a request got: the status and JSON body, or ``error``, the class name of what
    went wrong (never its text, which may quote the URL and more)."""

    status: int | None = None
    body: Any = None
    error: str = ""
    # The refusal's message when the address is not public (no request was made).
    refused: str = ""


def fetch_discovery(url: str) -> Fetched:
    """The OpenID Connect discovery document at ``url`` (OpenID Connect Discovery 1.0
    §4), as ``body``; ``error`` when unreachable, not 2xx or not JSON."""
    try:
        resp = session().get(url)
        resp.raise_for_status()
        return Fetched(status=resp.status_code, body=resp.json())
    except AddressRefusedError as exc:
        return Fetched(error=type(exc.error).__name__, refused=str(exc.error))
    except (requests.RequestException, ValueError) as exc:
        return Fetched(error=type(exc).__name__)


def reach(method: str, url: str) -> Fetched:
    """One request without credentials, to see the server answers: its ``status``, or
    ``error`` when it did not answer."""
    try:
        resp = session().request(method, url)
    except AddressRefusedError as exc:
        return Fetched(error=type(exc.error).__name__, refused=str(exc.error))
    except requests.RequestException as exc:
        return Fetched(error=type(exc).__name__)
    return Fetched(status=resp.status_code)


# --- webhooks (integrations.events.delivery) -----------------------------------------


@dataclass(frozen=True)
class Posted:
    """What one webhook request got: ``status`` (None when no answer came) and
    ``error_code`` ("" for a 2xx; ``http_<status>``, ``timeout``, ``connection_error``,
    ``private_address``). Never the answer's body."""

    status: int | None
    error_code: str


_WEBHOOK_ANSWER_BYTES = 64 * 1024


def post_webhook(url: str, *, body: bytes, headers: dict[str, str]) -> Posted:
    """POST one signed webhook to ``url`` through the public-address guard, with the
    webhook timeouts; redirects are not followed (a 3xx is a failure: the endpoint's
    URL is staff's to correct, and a redirect must not lead past the guard's intent).
    The answer's body is not read beyond what closing the connection needs."""
    try:
        resp = session().post(
            url,
            data=body,
            headers={**headers, "Content-Type": "application/json"},
            timeout=app_settings.webhook_timeout(),
            allow_redirects=False,
            stream=True,
        )
    except AddressRefusedError as exc:
        return Posted(status=None, error_code=exc.error.code)
    except requests.Timeout:
        return Posted(status=None, error_code="timeout")
    except requests.RequestException:
        return Posted(status=None, error_code="connection_error")
    status = resp.status_code
    try:
        # Read a short answer to its end, so that the connection goes back to the pool;
        # a long one is cut (closing drops the connection).
        read = 0
        for chunk in resp.iter_content(_WEBHOOK_ANSWER_BYTES):
            read += len(chunk)
            if read >= _WEBHOOK_ANSWER_BYTES:
                break
    except requests.RequestException:
        pass  # the status came: that is the answer
    finally:
        resp.close()
    return Posted(status=status, error_code="" if 200 <= status < 300 else f"http_{status}")


# --- google-auth's transport --------------------------------------------------------------


class _GoogleAuthResponse(google.auth.transport.Response):
    def __init__(self, response: requests.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Any:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class GoogleAuthTransport(google.auth.transport.Request):
    """google-auth's transport over ``session()``.

    Not ``google.auth.transport.requests.Request(session=...)``: that one passes its
    own 120 s timeout (ours would not apply), closes the session it was given when
    garbage-collected (our pool would go with it), and at DEBUG logs the request body,
    which holds the signed assertion. This one applies our timeouts, logs nothing, and
    remembers the last status (google-auth's errors do not carry it).
    """

    def __init__(self) -> None:
        self.last_status: int | None = None

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> _GoogleAuthResponse:
        try:
            response = session().request(
                method,
                url,
                data=body,
                headers=headers,
                timeout=timeout or app_settings.http_timeout(),
                allow_redirects=False,
                **kwargs,
            )
        except AddressRefusedError as exc:
            # Names the host only, never the URL's path or query.
            raise google.auth.exceptions.TransportError(str(exc.error)) from None
        except requests.RequestException as exc:
            # The exception's class only: its text could hold the URL and more.
            raise google.auth.exceptions.TransportError(type(exc).__name__) from None
        self.last_status = response.status_code
        return _GoogleAuthResponse(response)
