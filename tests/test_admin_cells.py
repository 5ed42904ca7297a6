"""The admin changelist's long cells are clamped with their whole text in a title
(config/admin_cells.py, templates/admin/change_list_results.html)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.html import format_html

from config.admin_cells import LONG_CELL, admin_cell
from integrations.secrets import secret_set


def test_a_long_cell_is_clamped_and_titled():
    value = 'K"<&' + "K" * LONG_CELL
    cell = format_html('<th class="field-key"><a href="/x/">{}</a></th>', value)

    assert str(admin_cell(cell)) == (
        '<th class="field-key" title="K&quot;&lt;&amp;' + "K" * LONG_CELL + '">'
        '<div class="cell-clamp"><a href="/x/">K&quot;&lt;&amp;'
        + "K" * LONG_CELL
        + "</a></div></th>"
    )


def test_a_short_cell_or_a_form_control_stays_as_it_is():
    short = format_html('<td class="field-a">{}</td>', "K" * LONG_CELL)
    control = format_html('<td><input type="text" name="x" value="{}"></td>', "K" * 99)

    assert admin_cell(short) is short
    assert admin_cell(control) is control


@pytest.mark.django_db
def test_the_changelist_titles_a_long_value(admin_client, alice):
    key = "K" * 128
    secret_set(user=alice, key=key, value="not shown")

    html = admin_client.get(reverse("admin:integrations_secret_changelist")).content.decode()

    assert f'title="{key}"><div class="cell-clamp">' in html
