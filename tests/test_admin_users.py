"""The admin's user and group pages show groups and permissions as checkboxes, not
Django's two-box filter (its script's help icons fail axe; config/admin_users.py),
and saving a ticked permission stores it."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_user_page_lists_permissions_as_checkboxes(admin_client, alice):
    Group.objects.create(name="support")

    html = admin_client.get(reverse("admin:auth_user_change", args=[alice.pk])).content.decode()

    assert 'class="selectfilter"' not in html and "SelectFilter2.js" not in html
    assert 'type="checkbox" name="user_permissions"' in html
    assert 'type="checkbox" name="groups"' in html


def test_ticking_a_permission_on_the_user_page_grants_it(admin_client, alice):
    permission = Permission.objects.get(codename="view_group")
    url = reverse("admin:auth_user_change", args=[alice.pk])

    response = admin_client.post(
        url,
        {
            "username": alice.username,
            "email": alice.email,
            "is_active": "on",
            "user_permissions": [permission.pk],
            "date_joined_0": alice.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": alice.date_joined.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(alice.user_permissions.all()) == [permission]


def test_group_page_lists_permissions_as_checkboxes(admin_client):
    group = Group.objects.create(name="support")

    html = admin_client.get(reverse("admin:auth_group_change", args=[group.pk])).content.decode()

    assert 'class="selectfilter"' not in html
    assert 'type="checkbox" name="permissions"' in html
