"""userinfo and the fake Google APIs, behind the sandbox's Bearer tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from .conftest import DRIVE, GMAIL_RO, SHEETS_RO, bearer

pytestmark = pytest.mark.django_db

VALUES = [["Name", "Score"], ["Ada", "36"], ["Grace", "42"]]


@pytest.mark.parametrize(
    "path",
    [
        "/sandbox/google/sheets/v4/spreadsheets/sheet-1/values/Sheet1!A1:B3",
        # Where google-api-python-client sends it with api_endpoint=".../sandbox/google/".
        "/sandbox/google/v4/spreadsheets/sheet-1/values/Sheet1%21A1%3AB3",
    ],
)
def test_sheets_values_get(flow, path):
    tokens = flow.tokens(["openid", SHEETS_RO])

    response = flow.client.get(path, **bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.json() == {"range": "Sheet1!A1:B3", "majorDimension": "ROWS", "values": VALUES}


def test_sheets_names_the_sheet_of_a_bare_range(flow):
    tokens = flow.tokens(["openid", DRIVE])

    response = flow.client.get(
        "/sandbox/google/v4/spreadsheets/s/values/A1:B3", **bearer(tokens["access_token"])
    )

    assert response.json()["range"] == "Sheet1!A1:B3"


def test_sheets_refuses_a_token_without_a_sheets_scope(flow):
    tokens = flow.tokens(["openid", "email", GMAIL_RO])

    response = flow.client.get(
        "/sandbox/google/v4/spreadsheets/s/values/A1", **bearer(tokens["access_token"])
    )

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == 403 and error["status"] == "PERMISSION_DENIED"
    assert error["message"] == "Request had insufficient authentication scopes."


@pytest.mark.parametrize("headers", [{}, bearer("sbx-at-nope"), {"HTTP_AUTHORIZATION": "Basic x"}])
def test_sheets_refuses_a_missing_or_unknown_token(flow, headers):
    response = flow.client.get("/sandbox/google/v4/spreadsheets/s/values/A1", **headers)

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_sheets_refuses_an_expired_token(flow):
    tokens = flow.tokens(["openid", SHEETS_RO])
    AccessToken.objects.update(expires=timezone.now() - timedelta(seconds=1))

    response = flow.client.get(
        "/sandbox/google/v4/spreadsheets/s/values/A1", **bearer(tokens["access_token"])
    )

    assert response.status_code == 401


def test_gmail_get_profile(flow, user):
    tokens = flow.tokens(["openid", "email", GMAIL_RO])

    response = flow.client.get(
        "/sandbox/google/gmail/v1/users/me/profile", **bearer(tokens["access_token"])
    )

    assert response.status_code == 200
    assert response.json() == {
        "emailAddress": user.email,
        "messagesTotal": 3,
        "threadsTotal": 2,
        "historyId": "1",
    }
    assert AccessToken.objects.get().user == user


def test_gmail_refuses_a_sheets_token_and_other_users(flow):
    tokens = flow.tokens(["openid", "email", SHEETS_RO])
    gmail = flow.tokens(["openid", "email", GMAIL_RO])

    wrong_scope = flow.client.get(
        "/sandbox/google/gmail/v1/users/me/profile", **bearer(tokens["access_token"])
    )
    other_user = flow.client.get(
        "/sandbox/google/gmail/v1/users/grace@example.com/profile",
        **bearer(gmail["access_token"]),
    )

    assert wrong_scope.status_code == 403
    assert other_user.status_code == 403
    assert other_user.json()["error"]["status"] == "PERMISSION_DENIED"


def test_userinfo(flow, user):
    tokens = flow.tokens(["openid", "email", SHEETS_RO])

    response = flow.client.get("/sandbox/userinfo/", **bearer(tokens["access_token"]))

    assert response.status_code == 200
    assert response.json() == {
        "sub": f"sandbox-{user.pk}",
        "email": "ada@example.com",
        "email_verified": True,
    }


def test_userinfo_needs_a_live_token_with_an_identity_scope(flow):
    tokens = flow.tokens([SHEETS_RO])

    no_token = flow.client.get("/sandbox/userinfo/")
    no_identity = flow.client.get("/sandbox/userinfo/", **bearer(tokens["access_token"]))

    assert no_token.status_code == 401
    assert no_identity.status_code == 403
