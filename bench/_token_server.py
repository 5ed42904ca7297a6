"""A local OAuth 2.0 token endpoint for ``bench/refresh_sweep.py``.

Run as its own process (so that it never competes for the GIL with the refresher)::

    python bench/_token_server.py [--port 0] [--latency-ms 0]

It prints ``PORT <n>`` on stdout once listening, then serves:

- ``POST /token``: a ``refresh_token`` grant (RFC 6749 §6) is answered, after sleeping
  the configured added latency, with a fresh
  ``{"access_token": ..., "expires_in": 3599, "token_type": "Bearer"}``; anything else
  with a 400 ``invalid_request`` / ``unsupported_grant_type``. Every request is counted,
  and every refresh token seen is counted (to check one request per connection).
- ``POST /_config?latency_ms=<ms>[&expires_in=<s>]``: set the added latency (and the
  lifetime of the tokens issued, 3599 s unless given) and reset the counters.
- ``GET /_stats``: the counters as JSON.

HTTP/1.1 with keep-alive (the refresher's pooled sessions keep their connections), one
thread per connection (``ThreadingHTTPServer``): the added latency is a ``sleep``, so
concurrent requests overlap as they would at a real provider.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    def __init__(self, latency: float) -> None:
        self.lock = threading.Lock()
        self.latency = latency
        self.expires_in = 3599
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.granted = 0
        self.refused = 0
        self.tokens: Counter[str] = Counter()
        self.first = 0.0
        self.last = 0.0


STATE = State(0.0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "bench-token/1"
    # Headers and body go out in one write, with Nagle off: otherwise the body waits
    # for the client's delayed ACK (40 ms on Linux), an artefact no real provider has.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        return None

    def _send(self, status: int, body: dict) -> None:
        """Status line, headers and body in one write (see disable_nagle_algorithm)."""
        data = json.dumps(body).encode()
        head = (
            f"{self.protocol_version} {status} {self.responses[status][0]}\r\n"
            f"Server: {self.version_string()}\r\n"
            f"Date: {self.date_time_string()}\r\n"
            "Content-Type: application/json\r\n"
            "Cache-Control: no-store\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.wfile.write(head.encode("latin-1") + data)

    def _body(self) -> dict[str, list[str]]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return parse_qs(raw.decode())

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/_stats":
            with STATE.lock:
                body = {
                    "requests": STATE.requests,
                    "granted": STATE.granted,
                    "refused": STATE.refused,
                    "distinct_refresh_tokens": len(STATE.tokens),
                    "max_requests_per_token": max(STATE.tokens.values(), default=0),
                    "latency_ms": STATE.latency * 1000,
                    "first": STATE.first,
                    "last": STATE.last,
                }
            self._send(200, body)
        else:
            self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/_config":
            self._body()
            query = parse_qs(url.query)
            with STATE.lock:
                STATE.latency = float(query.get("latency_ms", ["0"])[0]) / 1000
                STATE.expires_in = int(query.get("expires_in", ["3599"])[0])
                STATE.reset()
            self._send(200, {"ok": True})
            return
        if url.path != "/token":
            self._send(404, {"error": "not_found"})
            return
        form = self._body()
        now = time.time()
        with STATE.lock:
            STATE.requests += 1
            STATE.first = STATE.first or now
            latency = STATE.latency
            expires_in = STATE.expires_in
        grant = form.get("grant_type", [""])[0]
        refresh_token = form.get("refresh_token", [""])[0]
        if latency:
            time.sleep(latency)
        if grant != "refresh_token" or not refresh_token:
            with STATE.lock:
                STATE.refused += 1
            error = "unsupported_grant_type" if grant != "refresh_token" else "invalid_request"
            self._send(400, {"error": error})
            return
        with STATE.lock:
            STATE.granted += 1
            STATE.tokens[refresh_token] += 1
            STATE.last = time.time()
        self._send(
            200,
            {
                "access_token": "ya29.bench-" + secrets.token_urlsafe(32),
                "expires_in": expires_in,
                "token_type": "Bearer",
            },
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    STATE.latency = args.latency_ms / 1000
    server = Server((args.host, args.port), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
