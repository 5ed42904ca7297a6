"""The outbound address guard: every URL the server fetches leads to a public address,
checked on the address actually connected to (issue 11, point 6). The suite runs with
INTEGRATIONS_ALLOW_PRIVATE_URLS on (its fakes listen on 127.0.0.1); these tests turn it
off and use real sockets (``responses`` would replace the adapter that holds the guard)."""

from __future__ import annotations

import http.server
import socket
import threading
from datetime import UTC, datetime

import pytest
from django.test import override_settings

from integrations.errors import PrivateAddressError
from integrations.models import ProviderDefinition
from integrations.providers import client as provider_http
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_check
from tests.integrations.test_provider_definitions import make_acme

pytestmark = pytest.mark.django_db

guard_on = override_settings(INTEGRATIONS_ALLOW_PRIVATE_URLS=False)


class _Recorder(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = b'{"issuer": "http://local"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server():
    """A server on 127.0.0.1 that records every request it gets."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.paths = []  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Loopback, RFC 1918, the cloud metadata address (link-local), IPv6 loopback, a name that
# resolves to loopback, IPv4-mapped IPv6 loopback, carrier-grade NAT, unspecified, AWS's
# IPv6 metadata address (fc00::/7).
REFUSED_HOSTS = [
    "127.0.0.1",
    "10.0.0.1",
    "169.254.169.254",
    "[::1]",
    "localhost",
    "[::ffff:127.0.0.1]",
    "100.64.0.1",
    "0.0.0.0",
    "[fd00:ec2::254]",
]


@guard_on
@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_check_and_discovery_refuse_addresses_that_are_not_public(host):
    url = f"http://{host}:8080"
    fetched = provider_http.fetch_discovery(url + "/.well-known/openid-configuration")
    assert fetched.status is None and fetched.error == "PrivateAddressError"
    reached = provider_http.reach("GET", url + "/authorize")
    assert reached.status is None and reached.refused

    definition = make_acme(
        enabled=False,
        last_check_ok=False,
        discovery_url=url + "/.well-known/openid-configuration",
        authorize_url=url + "/authorize",
        token_url=url + "/token",
        revocation_url=url + "/revoke",
        userinfo_url=url + "/me",
    )
    report = provider_definition_check(definition=definition)
    assert not report.ok
    name = host.strip("[]")
    for endpoint in ("discovery", "authorize", "token", "revocation", "userinfo"):
        [line] = [line for line in report.lines if line.startswith(f"✗ {endpoint} ")]
        assert f"refused: {name} is not a public address" in line
        assert "INTEGRATIONS_ALLOW_PRIVATE_URLS" in line
    definition.refresh_from_db()
    assert not definition.last_check_ok and not definition.enabled


@guard_on
def test_no_request_reaches_a_local_server(local_server):
    base = f"http://127.0.0.1:{local_server.server_port}"
    provider_http.fetch_discovery(base + "/.well-known/openid-configuration")
    provider_http.reach("POST", base + "/token")
    assert local_server.paths == []
    with override_settings(INTEGRATIONS_ALLOW_PRIVATE_URLS=True):
        assert provider_http.reach("POST", base + "/token").status == 200
    assert local_server.paths == ["/token"]


def _check_lines(port: int) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    ProviderDefinition.objects.filter(slug="acme").delete()
    definition = make_acme(
        enabled=False,
        authorize_url=base + "/authorize",
        token_url=base + "/token",
        revocation_url=base + "/revoke",
        userinfo_url=base + "/me",
    )
    report = provider_definition_check(definition=definition)
    return [line.replace(str(port), "PORT") for line in report.lines]


def test_check_no_longer_tells_which_internal_ports_answer(local_server):
    open_port, shut_port = local_server.server_port, closed_port()
    with guard_on:
        assert _check_lines(open_port) == _check_lines(shut_port)
    # Without the guard the two differ: the test above would catch its loss.
    assert _check_lines(open_port) != _check_lines(shut_port)


@guard_on
def test_a_name_checked_public_is_connected_to_at_the_checked_address(local_server, monkeypatch):
    """DNS rebinding: the name resolves to a public address when checked and to loopback
    afterwards. The connection goes to the checked address, never to the local server."""
    real = socket.getaddrinfo
    answers = iter(["1.1.1.1"])  # public

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            address = next(answers, "127.0.0.1")
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with override_settings(INTEGRATIONS_HTTP_TIMEOUT=(0.3, 0.3)):
        reached = provider_http.reach("GET", f"http://rebind.test:{local_server.server_port}/x")
    assert local_server.paths == []
    assert not reached.refused


@guard_on
def test_a_public_address_is_not_refused():
    # Whether anything answers there (this machine may have no network), the request is
    # made: it is not refused.
    with override_settings(INTEGRATIONS_HTTP_TIMEOUT=(0.3, 0.3)):
        reached = provider_http.reach("GET", "http://1.1.1.1:9/")
    assert not reached.refused and (reached.status or reached.error)


@guard_on
def test_token_and_revocation_of_a_staff_defined_provider_are_refused(local_server):
    base = f"http://127.0.0.1:{local_server.server_port}"
    make_acme(token_url=base + "/token", revocation_url=base + "/revoke")
    config = registry.provider_config("acme")
    with pytest.raises(PrivateAddressError) as refused:
        provider_http.refresh_grant(config, "a-refresh-token", now=datetime.now(UTC))
    assert "127.0.0.1 is not a public address" in str(refused.value)
    assert "a-refresh-token" not in str(refused.value)
    assert refused.value.payload() == {"error": "provider_error", "detail": "private_address"}
    outcome = provider_http.revoke(config, token="tok", token_type_hint="refresh_token")
    assert not outcome.ok and outcome.error_code == "private_address"
    assert local_server.paths == []
