"""One error family: every error the product raises on purpose is an
``IntegrationError`` or a ``ManifestError`` that knows its API answer."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import apps_registry
import integrations
from apps_registry.manifest import ManifestError
from integrations.errors import (
    IntegrationError,
    ProviderUnavailableError,
    UnknownProviderError,
    error_from_response,
)

ROOT = Path(__file__).resolve().parents[2]

# Exceptions of ours that are not answers to a request, each for a reason.
OUTSIDE_THE_FAMILY = {
    # A configuration error (as ImproperlyConfigured), found by the system check.
    "integrations.core.crypto.KeyConfigurationError",
    # Pure parsers' ValueErrors, turned into a family error (or a form error) by their caller.
    "integrations.core.tokens.TokenResponseError",
    "integrations.core.provider_definitions.DefinitionError",
    # The sandbox provider's own, answered as RFC 7009 says.
    "integrations.sandbox.validators.RevocationTokenUnknownError",
    # requests' form of a refused address (a RequestException, for allauth's callback),
    # carrying the family's PrivateAddressError, which the client raises or reports.
    "integrations.providers.client.AddressRefusedError",
    # DRF's own family (APIException), answered by DRF.
    "apps_registry.api.parsers.PayloadTooLargeError",
}


def _product_modules():
    for package in (integrations, apps_registry):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".migrations" in info.name:
                continue
            yield importlib.import_module(info.name)


def _family(base: type[Exception]) -> list[type[IntegrationError | ManifestError]]:
    found: list = []
    todo: list = [base]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_of_ours_is_in_the_family_and_knows_its_answer():
    modules = list(_product_modules())
    ours = {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for module in modules
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    outside = {
        name for name, cls in ours.items() if not issubclass(cls, IntegrationError | ManifestError)
    }
    assert outside == OUTSIDE_THE_FAMILY
    family = _family(IntegrationError) + _family(ManifestError)
    assert {f"{c.__module__}.{c.__qualname__}" for c in family} >= set(ours) - outside
    for cls in family:
        assert isinstance(cls.status, int) and 400 <= cls.status <= 599, cls
        assert isinstance(cls.code, str) and re.fullmatch(r"[a-z_]+", cls.code), cls
        assert callable(cls.payload) and callable(cls.headers), cls


def test_no_builtin_exception_is_control_flow():
    pattern = re.compile(r"(raise|except) \(?(KeyError|PermissionError)\b")
    hits = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in ("integrations", "apps_registry")
        for path in sorted((ROOT / package).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_a_provider_refusal_is_answered_with_its_code_only():
    refusal = error_from_response(400, {"error": "invalid_scope", "error_description": "x"})
    assert type(refusal) is IntegrationError and refusal.status == 502
    assert refusal.payload() == {"error": "provider_error", "detail": "invalid_scope"}
    outage = error_from_response(503, {})
    assert isinstance(outage, ProviderUnavailableError) and outage.status == 503
    assert outage.payload() == {"error": "provider_unavailable", "detail": "http_503"}
    assert outage.headers() == {"Retry-After": "60"}


def test_an_unknown_provider_is_not_a_key_error():
    error = UnknownProviderError("gone")
    assert not isinstance(error, KeyError)
    assert (error.status, error.code, error.provider_id) == (404, "unknown_provider", "gone")
    assert error.payload() == {"error": "unknown_provider", "detail": str(error)}
