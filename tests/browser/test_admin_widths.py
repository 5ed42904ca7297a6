"""Every admin changelist fits a 1280 px window when its rows hold long values: each
registered model gets a row whose text fields are as long as their column allows (up
to 128 characters, with no space to break at), whose emails and URLs are long; neither
the page nor the table's own box (the admin scrolls a wide table inside it) may scroll
sideways. Long cells stop after two lines with an ellipsis, their whole text in their
title (config/admin_cells.py, static/css/admin-brand.css)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.utils import timezone
from playwright.sync_api import Page

import config.urls  # noqa: F401  (its admin registrations are the admin's)

from .test_pages import build_world, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = 128
MODELS = sorted(admin.site._registry, key=lambda m: m._meta.label)


def long_text(n: int) -> str:
    return ("LongValueWithoutSpaces" * 8)[: min(n, LONG)]


def long_email(n: int) -> str:
    return ("a" * 60 + "@" + "very-long-subdomain-" * 4 + "example.org")[-min(n, LONG) :]


def _value(field: models.Field[Any, Any], built: dict[type[models.Model], models.Model]) -> Any:
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.JSONField):
        return {}
    if isinstance(field, models.EmailField):
        return long_email(field.max_length or LONG)
    if isinstance(field, models.URLField):
        return ("https://" + "long-host-name-" * 8 + ".example/" + "p" * 64)[: field.max_length]
    if isinstance(field, models.SlugField):
        return ("long-slug-" * 13)[: min(field.max_length or LONG, LONG)]
    if isinstance(field, models.CharField | models.TextField):
        return long_text(field.max_length or LONG)
    if isinstance(field, models.BinaryField):
        return b"x"
    if isinstance(field, models.BooleanField):
        return True
    if isinstance(field, models.DateTimeField):
        return timezone.now()
    if isinstance(field, models.IntegerField | models.BigIntegerField):
        return 123456789
    if isinstance(field, models.UUIDField):
        return None  # its default
    if isinstance(field, models.ForeignKey):
        return build(field.related_model, built)
    return None


def build(model: type[models.Model], built: dict[type[models.Model], models.Model]) -> models.Model:
    """One row of ``model`` with long values in every text field it has (nullable
    foreign keys stay empty; required ones get a row of their own)."""
    if model in built:
        return built[model]
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if (
            field.primary_key
            or getattr(field, "auto_now", False)
            or getattr(field, "auto_now_add", False)
        ):
            continue
        if isinstance(field, models.ForeignKey) and field.null:
            continue
        if field.has_default() and not isinstance(field, models.CharField):
            continue
        value = _value(field, built)
        if value is not None:
            values[field.name] = value
    built[model] = model._default_manager.create(**values)
    return built[model]


@pytest.fixture
def long_rows(db) -> None:
    user_model = get_user_model()
    built: dict[type[models.Model], models.Model] = {
        user_model: user_model.objects.create_user(
            username=long_text(150),
            email=long_email(254),
            password="a long enough passphrase 42",
            first_name=long_text(150),
            last_name=long_text(150),
        )
    }
    for model in MODELS:
        build(model, built)


@pytest.mark.parametrize(
    "model", MODELS, ids=[f"{m._meta.app_label}_{m._meta.model_name}" for m in MODELS]
)
def test_admin_changelist_fits_1280_with_long_values(site, page: Page, long_rows, model):
    world = build_world()
    page.set_viewport_size({"width": 1280, "height": 800})
    sign_in(page, site, world.staff)
    url = f"{site}/admin/{model._meta.app_label}/{model._meta.model_name}/"

    response = page.goto(url)

    assert response is not None and response.status == 200, url
    assert page.locator("#result_list tbody tr").count() >= 1
    # The admin scrolls a wide table inside its own box (.results), which the page's
    # width does not show: both must fit.
    widths = page.evaluate(
        """() => ({
            page: document.documentElement.scrollWidth,
            window: window.innerWidth,
            table: document.querySelector('#result_list').scrollWidth,
            box: document.querySelector('#changelist .results').clientWidth,
        })"""
    )
    assert widths["page"] <= widths["window"] and widths["table"] <= widths["box"], {
        "url": url,
        **widths,
    }
