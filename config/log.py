"""Log lines with a request id: JSON lines or text (``LOG_FORMAT``).

Every line logged while a request is served carries its id (``request_id``), and so does
every line of a Celery task that request enqueued: the id travels in the task message's
headers (``before_task_publish``) and is set again around the task in the worker
(``task_prerun`` / ``task_postrun``). A line logged outside both has ``request_id`` "-".

The id is set when Django's handler begins a request (``request_started``) and cleared
when the response is closed (``request_finished``). It is the request's ``X-Request-ID``
when that comes from a trusted proxy (``LOG_REQUEST_ID_TRUSTED_PROXIES``: addresses or
networks of REMOTE_ADDR) and looks like an id; otherwise a new one. Either way the
response carries it back in ``X-Request-ID``.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.http import HttpRequest, HttpResponseBase

request_id: ContextVar[str] = ContextVar("request_id", default="-")

HEADER = "X-Request-ID"
# LOG_FORMAT=text (LOGGING in config/settings/base.py).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
# What an id from a proxy may look like: no spaces, quotes or control characters.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The attributes every LogRecord has: the rest were given with ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}
_PLAIN = (str, int, float, bool, type(None))


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (``%(request_id)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message,
    request_id, the ``extra=`` fields of plain values, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        for key, value in vars(record).items():
            # Plain values only: Django's ``extra={"request": ...}`` would print the
            # request with its query string (an OAuth callback's code and state).
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def _trusted(address: str) -> bool:
    networks = settings.LOG_REQUEST_ID_TRUSTED_PROXIES
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def request_id_from(environ: dict[str, Any]) -> str:
    given = str(environ.get("HTTP_X_REQUEST_ID", ""))
    if given and _ACCEPTABLE.match(given) and _trusted(str(environ.get("REMOTE_ADDR", ""))):
        return given
    return uuid.uuid4().hex


def request_begun(
    environ: dict[str, Any] | None = None, scope: dict[str, Any] | None = None, **_: Any
) -> None:
    """``request_started``: before Django's handler does anything, so that its own lines
    (``django.request``'s "Not Found: ...", logged after the middleware returned) carry
    the id too. WSGI sends the environ, ASGI the scope."""
    if environ is None and scope is not None:
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        client = scope.get("client") or ("", 0)
        environ = {
            "HTTP_X_REQUEST_ID": headers.get("x-request-id", b"").decode("latin-1"),
            "REMOTE_ADDR": client[0],
        }
    request_id.set(request_id_from(environ or {}))


def request_ended(**_: Any) -> None:
    """``request_finished`` (the response closed): lines after it are no request's."""
    request_id.set("-")


request_started.connect(request_begun, dispatch_uid="config.log.request_begun")
request_finished.connect(request_ended, dispatch_uid="config.log.request_ended")


class RequestIdMiddleware:
    """Answers the request id in ``X-Request-ID``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request_id.get() == "-":  # a handler that sent no request_started
            request_id.set(request_id_from(request.META))
        response = self.get_response(request)
        response[HEADER] = request_id.get()
        return response


# --- Celery: the id in the task's headers ------------------------------------------------


def task_headers_stamp(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """``before_task_publish``: the enqueuing request's id goes with the message."""
    rid = request_id.get()
    if headers is not None and rid != "-":
        headers.setdefault("request_id", rid)


_task_tokens: dict[str, Any] = {}


def task_request_id_set(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """``task_prerun``: the task's lines carry the id it was enqueued with."""
    if task is None or task_id is None:
        return
    rid = task.request.get("request_id") or (task.request.headers or {}).get("request_id")
    if rid and _ACCEPTABLE.match(str(rid)):
        _task_tokens[task_id] = request_id.set(str(rid))


def task_request_id_reset(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        request_id.reset(token)
