"""The hub's HTTP protocol without I/O: what to send for each call, what an answer
means, when to try again. The sync and the async clients only carry the bytes and
sleep; everything they decide is decided here, once (the sans-I/O pattern of h11).

A call is an ``Operation``: the ``Request`` and how to read a successful answer.
``exchange`` runs it as a generator: it yields a ``Request`` (the client sends it and
sends back the ``Answer``) or a ``Sleep`` (the client sleeps, then sends ``None``), and
returns the result or raises the ``HubError`` of the last answer.
"""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

import httpx

from . import errors, models

__version__ = "0.1.0"
T = TypeVar("T")
Body = dict[str, Any]

RUN_ENVIRONMENTS = "/api/v1/run-environments/"
CONNECTIONS = "/api/v1/connections/"
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]  # case-insensitive where it comes from httpx
    content: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Operation(Generic[T]):
    request: Request
    parse: Callable[[Body], T]
    # Answers worth another attempt: 503 (the hub or a provider is down for a while);
    # a forced refresh also 429 (rate limited per connection).
    retry_on: frozenset[int] = frozenset({503})


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` more attempts, sleeping at most ``max_wait`` seconds in
    all: each sleep is the answer's ``Retry-After``, else ``backoff * 2**attempt``. An
    answer whose ``Retry-After`` would pass ``max_wait`` is raised at once."""

    max_retries: int = 2
    max_wait: float = 30.0
    backoff: float = 0.5
    clock: Callable[[], datetime] = field(default=_utcnow, repr=False)


# --- the calls ------------------------------------------------------------------------


def run_environment(
    *,
    user: str | int,
    app: str,
    version: int | None = None,
    connections: Mapping[str, int] | None = None,
) -> Operation[models.RunEnvironment]:
    """The environment for ``user`` (id or email) running ``app`` (``namespace/name``):
    exactly the keys its manifest declares, tokens valid for at least the hub's margin.

    ``version``: a manifest version instead of the current one. ``connections``: a
    connection id per provider (``{"google": 12}``) instead of the user's default one.
    Raises ``NotAuthorizedYetError`` (409) with what is missing and the actions that fix
    it, ``NeedsReconnectError`` where a grant is dead, ``PermissionDeniedError``
    (``runner_scope``), ``NotFoundError``, ``ProviderUnavailableError`` (503, retried).
    """
    body: dict[str, Any] = {"user": str(user), "app": app}
    if version is not None:
        body["version"] = version
    if connections:
        body["connections"] = dict(connections)
    return Operation(Request("POST", RUN_ENVIRONMENTS, json=body), _run_environment)


def list_connections(
    *, user: str | int | None = None, provider: str | None = None
) -> Operation[list[models.Connection]]:
    """The connections the credential may see: of ``user`` (id or email; a personal
    token sees only its own), optionally at one ``provider``."""
    params = {k: str(v) for k, v in (("user", user), ("provider", provider)) if v is not None}
    return Operation(Request("GET", CONNECTIONS, params=params), _connections)


def get_connection(id: int) -> Operation[models.Connection]:
    """One connection; ``NotFoundError`` if there is none the credential may see."""
    return Operation(Request("GET", _connection_path(id)), _connection)


def refresh_connection(id: int) -> Operation[models.Refresh]:
    """Refresh the connection's token now. Rate limited per connection: a 429 is retried
    as its ``Retry-After`` says, within the retry policy, then ``RateLimitedError``."""
    return Operation(
        Request("POST", _connection_path(id) + "refresh/"),
        _refresh,
        retry_on=frozenset({429, 503}),
    )


def disconnect_connection(id: int) -> Operation[models.Disconnection]:
    """Revoke the grant at the provider and delete the connection here."""
    return Operation(Request("DELETE", _connection_path(id)), _disconnection)


def _connection_path(id: int) -> str:
    if isinstance(id, bool) or not isinstance(id, int):
        raise TypeError(f"a connection id is an int, not {type(id).__name__}")
    return f"{CONNECTIONS}{id}/"


# --- running a call -------------------------------------------------------------------


def exchange(
    operation: Operation[T], policy: RetryPolicy
) -> Generator[Request | Sleep, Answer | None, T]:
    """Send, read, and try again as the policy allows (see the module's docstring)."""
    waited = 0.0
    attempt = 0
    while True:
        answer = yield operation.request
        if answer is None:
            raise TypeError("send the Answer of the Request yielded")
        try:
            return outcome(operation, answer, now=policy.clock())
        except errors.HubError as error:
            delay = retry_delay(operation, error, attempt=attempt, waited=waited, policy=policy)
            if delay is None:
                raise
        yield Sleep(delay)
        waited += delay
        attempt += 1


def outcome(operation: Operation[T], answer: Answer, *, now: datetime) -> T:
    """The result of a 2xx answer, or raise the error the answer means."""
    body = _json(answer.content)
    if 200 <= answer.status < 300:
        return operation.parse(body)
    raise error_for(answer.status, answer.headers, body, now=now)


def retry_delay(
    operation: Operation[Any],
    error: errors.HubError,
    *,
    attempt: int,
    waited: float,
    policy: RetryPolicy,
) -> float | None:
    """Seconds to sleep before attempt ``attempt + 1``, or None: raise ``error`` now."""
    if error.status not in operation.retry_on or attempt >= policy.max_retries:
        return None
    delay = error.retry_after if error.retry_after is not None else policy.backoff * 2**attempt
    if waited + delay > policy.max_wait:
        return None
    return delay


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) in seconds from ``now``: delay-seconds or an
    HTTP-date (never negative); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, as RFC 5322 §3.3 reads it
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - now).total_seconds())


# --- the HTTP edge (shared by both clients) ----------------------------------------------


def headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "User-Agent": f"integrations-hub-client/{__version__}",
    }


def answer_of(response: httpx.Response) -> Answer:
    return Answer(response.status_code, response.headers, response.content)


def transport_error(exc: httpx.TransportError) -> errors.HubError:
    """The client's error for a request that got no answer. The message names the
    kind of failure, never the request (whose headers hold the token)."""
    if isinstance(exc, httpx.TimeoutException):
        return errors.HubTimeoutError(
            f"the hub did not answer in time ({type(exc).__name__})", code="timeout"
        )
    return errors.HubConnectionError(
        f"the hub could not be reached ({type(exc).__name__})", code="connection_error"
    )


# --- reading answers ------------------------------------------------------------------


def _json(content: bytes) -> Body:
    try:
        data = json.loads(content) if content else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith("Z"):  # Python 3.10's fromisoformat does not read "Z"
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _run_environment(body: Body) -> models.RunEnvironment:
    env = {str(k): str(v) for k, v in dict(body["env"]).items()}
    return models.RunEnvironment(
        env=env,
        expires_at=_datetime(body.get("expires_at")),
        keys=tuple(body.get("keys") or sorted(env)),
        app=str(body.get("app", "")),
        version=body.get("version"),
    )


def _connection(body: Body) -> models.Connection:
    user = body.get("user") or {}
    account = body.get("account") or {}
    return models.Connection(
        id=int(body["id"]),
        user=models.ConnectionUser(id=int(user.get("id", 0)), email=str(user.get("email", ""))),
        provider=str(body["provider"]),
        account=models.Account(email=account.get("email"), subject=account.get("subject")),
        capabilities=tuple(body.get("capabilities") or ()),
        status=str(body.get("status", "")),
        error_code=body.get("error_code") or None,
        expires_at=_datetime(body.get("expires_at")),
        connected_at=_datetime(body.get("connected_at")),
        last_used_at=_datetime(body.get("last_used_at")),
        last_refreshed_at=_datetime(body.get("last_refreshed_at")),
        is_default=bool(body.get("is_default")),
    )


def _connections(body: Body) -> list[models.Connection]:
    return [_connection(c) for c in body.get("connections", [])]


def _refresh(body: Body) -> models.Refresh:
    return models.Refresh(
        connection=_connection(body["connection"]), refreshed=bool(body["refreshed"])
    )


def _disconnection(body: Body) -> models.Disconnection:
    return models.Disconnection(
        deleted=bool(body.get("deleted")), revocation=str(body["revocation"])
    )


def _missing(item: Mapping[str, Any]) -> models.MissingItem:
    return models.MissingItem(
        kind=str(item.get("kind", "")),
        key=str(item.get("key", "")),
        reason=str(item.get("reason", "")),
        provider=item.get("provider"),
        description=str(item.get("description") or ""),
    )


def _action(item: Mapping[str, Any]) -> models.Action:
    return models.Action(
        kind=str(item.get("kind", "")),
        url=str(item.get("url", "")),
        provider=item.get("provider"),
        capabilities=tuple(item.get("capabilities") or ()),
        connection_id=item.get("connection_id"),
        secrets=tuple(item.get("secrets") or ()),
    )


def _outage(item: Mapping[str, Any]) -> models.Outage:
    return models.Outage(
        provider=str(item.get("provider", "")),
        connection_id=item.get("connection_id"),
        reason=str(item.get("reason", "")),
        retry_at=_datetime(item.get("retry_at")),
    )


_BY_STATUS: dict[int, type[errors.HubError]] = {
    400: errors.InvalidRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    429: errors.RateLimitedError,
}
# The code when the answer names none (DRF's own answers are {"detail": ...}).
_CODE_BY_STATUS = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    429: "rate_limited",
    503: "provider_unavailable",
}


def error_for(
    status: int, headers: Mapping[str, str], body: Body, *, now: datetime
) -> errors.HubError:
    """The error an answer of ``status`` with ``body`` means (one table, as oauthlib's
    ``raise_from_error``)."""
    code = body.get("error") if isinstance(body.get("error"), str) else None
    detail = body.get("detail")
    common: dict[str, Any] = {
        "status": status,
        "code": code or _CODE_BY_STATUS.get(status, f"http_{status}"),
        "detail": detail,
        "retry_after": parse_retry_after(headers.get("retry-after"), now=now),
    }
    message = detail if isinstance(detail, str) and detail else f"{common['code']} ({status})"
    actions = [_action(a) for a in body.get("actions") or ()]
    dead_grant = (
        code == "needs_reconnect"
        or (code == "provider_error" and detail == "invalid_grant")
        or any(a.kind == "reconnect" for a in actions)
    )
    if dead_grant or (status == 409 and code == "not_ready"):
        cls = errors.NeedsReconnectError if dead_grant else errors.NotAuthorizedYetError
        return cls(
            message if not body.get("missing") else "",
            missing=[_missing(m) for m in body.get("missing") or ()],
            actions=actions,
            unavailable=[_outage(o) for o in body.get("unavailable") or ()],
            **common,
        )
    if status == 503:
        return errors.ProviderUnavailableError(
            message, outages=[_outage(o) for o in body.get("unavailable") or ()], **common
        )
    return _BY_STATUS.get(status, errors.HubError)(message, **common)
