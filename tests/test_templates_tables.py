"""Every table's body cell names its column in ``data-label``: on a phone the table
stacks and shows that name above the cell (static/css/site.css). An empty label is
for a cell whose content names itself (an action button, a "Used by" line). The
admin's own templates (templates/admin/) are Django's tables, which do not stack."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


class _BodyCells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.in_body = 0
        self.unlabelled: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self.in_body += 1
        elif tag in ("td", "th") and self.in_body and "data-label" not in dict(attrs):
            self.unlabelled.append(f"line {self.getpos()[0]}: <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self.in_body -= 1


def _unlabelled(text: str) -> list[str]:
    parser = _BodyCells()
    parser.feed(text)
    return parser.unlabelled


def test_the_check_finds_an_unlabelled_cell():
    html = "<table><thead><tr><th>A</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
    assert _unlabelled(html) == ["line 1: <td>"]


def test_every_table_cell_in_templates_has_a_data_label():
    templates = [
        p
        for p in TEMPLATES.rglob("*.html")
        if "<table" in p.read_text() and p.parts[len(TEMPLATES.parts)] != "admin"
    ]
    assert len(templates) >= 4  # the secrets, apps, app and upload pages
    unlabelled = {
        str(p.relative_to(TEMPLATES)): cells
        for p in templates
        if (cells := _unlabelled(p.read_text()))
    }
    assert unlabelled == {}
