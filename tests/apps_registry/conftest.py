"""Fixtures for the apps registry: real manifests, uploads through the service, API
tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps_registry import services
from apps_registry.models import Namespace

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"
REAL = {path.name: path.read_text() for path in sorted(FIXTURES.glob("*.inf.yml"))}

REPORT = """\
namespace: acme
name: report
title: Weekly report
description: Builds a report from a spreadsheet
integrations:
  - key: google.sheets.readonly
    description: Read the source spreadsheet
  - key: google.drive.readonly
    description: Find the spreadsheet in Drive
    optional: true
"""


def own_namespaces(user: Any, *names: str) -> None:
    """Make ``user`` an owner of the namespaces ``names``, as staff do in the admin: the
    real manifests publish into reserved ones (``google``, ``x``, ``discord``)."""
    for name in names:
        namespace, _ = Namespace.objects.get_or_create(name=name, defaults={"reserved": True})
        namespace.owners.add(user)


@pytest.fixture
def upload():
    def do(user: Any, text: str | bytes = REPORT, **kwargs: Any) -> Any:
        return services.manifest_upload(user=user, text=text, **kwargs)

    return do


@pytest.fixture
def alice_token(alice) -> str:
    return services.api_token_create(user=alice, name="ci")[1]


@pytest.fixture
def bob_token(bob) -> str:
    return services.api_token_create(user=bob, name="ci")[1]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


@pytest.fixture
def api() -> Client:
    return Client()
