"""Path converters for ids taken from URLs.

Django's ``<int:...>`` matches any run of digits, and a lookup with a value beyond
what the column holds fails on SQLite (``OverflowError``: Python ints reach the
driver unchecked) instead of finding nothing. ``<id:...>`` matches only what a
primary key can be (1 to 2**63 - 1, BigAutoField's range), so a larger one is a 404
(https://docs.djangoproject.com/en/stable/topics/http/urls/#registering-custom-path-converters:
``to_python`` raising ``ValueError`` means no match).
"""

from __future__ import annotations

from django.urls import register_converter

MAX_ID = 2**63 - 1


class IdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise ValueError("not a primary key")
        return number

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
