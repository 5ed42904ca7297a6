"""The admin's user and group pages, with their groups and permissions as checkboxes
instead of Django's two-box filter.

The filter (admin/js/SelectFilter2.js) adds help icons that are a ``<span>`` with an
``aria-label`` and no role, which assistive technology ignores (axe:
aria-prohibited-attr); a plain multiple select loses every choice at a click without
Ctrl. Checkboxes work without a script and say what each one is."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db.models import Field, ManyToManyField

_CHECKBOXES: Mapping[type[Field[Any, Any]], Mapping[str, Any]] = {
    ManyToManyField: {"widget": forms.CheckboxSelectMultiple(attrs={"class": "choice-list"})}
}


class HubUserAdmin(UserAdmin):
    filter_horizontal = ()
    formfield_overrides = _CHECKBOXES


class HubGroupAdmin(GroupAdmin):
    filter_horizontal = ()
    formfield_overrides = _CHECKBOXES


def register_user_admin(site: admin.AdminSite) -> None:
    """Replace ``django.contrib.auth``'s registrations (made when the admin discovered
    its apps)."""
    for model, model_admin in ((get_user_model(), HubUserAdmin), (Group, HubGroupAdmin)):
        if site.is_registered(model):
            site.unregister(model)
        site.register(model, model_admin)
