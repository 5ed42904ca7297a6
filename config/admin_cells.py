"""The admin changelist's long cells: cut after two lines with an ellipsis, their
whole text in the cell's ``title`` (templates/admin/change_list_results.html,
static/css/admin-brand.css), so that a changelist fits its window whatever its
values (tests/browser/test_admin_widths.py)."""

from __future__ import annotations

import re
from html import unescape

from django import template
from django.utils.html import escape, strip_tags
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Longer than this, a value may not fit two lines of its column: it gets a title.
LONG_CELL = 32
_CELL = re.compile(r"\A<(td|th)([^>]*)>(.*)</\1>\Z", re.DOTALL)
_FORM_CONTROL = re.compile(r"<(input|select|textarea)\b")


def cell_text(inner: str) -> str:
    """The text a cell's HTML shows, its white space collapsed."""
    return " ".join(unescape(strip_tags(inner)).split())


@register.filter
def admin_cell(item: SafeString) -> SafeString:
    """One ``<td>`` or ``<th>`` that Django's ``items_for_result`` rendered, its
    content clamped and titled when its text is long (a cell holding a form control,
    from ``list_editable``, stays as it is)."""
    match = _CELL.match(str(item))
    if not match or _FORM_CONTROL.search(match[3]):
        return item
    tag, attrs, inner = match.groups()
    text = cell_text(inner)
    if len(text) <= LONG_CELL:
        return item
    return mark_safe(  # noqa: S308  (inner is Django's own escaped cell; text is escaped)
        f'<{tag}{attrs} title="{escape(text)}"><div class="cell-clamp">{inner}</div></{tag}>'
    )
