"""The API answers the product's errors in one handler
(``apps_registry.api.errors.exception_handler``), with each error's own answer."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from apps_registry import services
from apps_registry.run_env import RunTargetNotFoundError

pytestmark = pytest.mark.django_db


def test_a_run_target_not_found_is_answered_by_the_handler(bob, caplog):
    caplog.set_level(logging.DEBUG, logger="apps_registry.api.errors")
    runner = services.runner_token_create(name="runner-test", all_namespaces=True)[1]
    resp = Client().post(
        "/api/v1/run-environments/",
        json.dumps({"user": str(bob.pk), "app": "acme/none"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {runner}",
    )
    error = RunTargetNotFoundError("no valid version of acme/none")
    assert resp.status_code == error.status == 404
    assert resp.json() == error.payload() == {"error": "not_found", "detail": str(error)}
    assert "no-store" in resp["Cache-Control"]  # the view's decorator holds for errors
    # Not logged by the handler (Django's request log says "Not Found" as ever).
    assert [r for r in caplog.records if r.name == "apps_registry.api.errors"] == []
