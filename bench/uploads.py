"""Time how fast the upload endpoints refuse hostile uploads, end to end through Django.

Run from the repository root::

    python bench/uploads.py [--runs 50]

Each case goes through the whole request path (middleware, authentication, the view)
with Django's test client against a throwaway in-memory SQLite database, and prints
the median wall time in milliseconds and the status code. ``bench/manifests.py``
times the parser alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402 - settings first

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from apps_registry import services  # noqa: E402
from apps_registry.manifest import MAX_MANIFEST_BYTES  # noqa: E402
from bench.manifests import billion_laughs  # noqa: E402


def median_ms(call: Callable[[], int], runs: int) -> tuple[float, int]:
    status = call()  # warm up
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="requests per case (default 50)")
    args = parser.parse_args()

    setup_test_environment()
    # Each refusal is a 4xx that Django logs as a warning.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    call_command("migrate", verbosity=0, interactive=False)
    user = get_user_model().objects.create_user(username="bench", email="bench@example.com")
    _, token = services.api_token_create(user=user, name="bench")
    web = Client()
    web.force_login(user)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    over = b"name: big\n#" + b"x" * MAX_MANIFEST_BYTES + b"\n"
    huge = b"name: huge\n#" + b"x" * (10 * 1024 * 1024) + b"\n"
    bomb = billion_laughs()
    cases: list[tuple[str, Callable[[], int]]] = [
        (
            f"API text/plain, {len(over):,} bytes (64 KiB + 12)",
            lambda: api.post("/api/v1/manifests/", over, content_type="text/plain").status_code,
        ),
        (
            f"API text/plain, {len(huge):,} bytes (10 MiB)",
            lambda: api.post("/api/v1/manifests/", huge, content_type="text/plain").status_code,
        ),
        (
            f"API JSON, manifest of {len(over):,} bytes",
            lambda: (
                api.post(
                    "/api/v1/manifests/",
                    json.dumps({"text": over.decode()}),
                    content_type="application/json",
                ).status_code
            ),
        ),
        (
            f"API billion laughs ({len(bomb)} bytes)",
            lambda: api.post("/api/v1/manifests/", bomb, content_type="text/plain").status_code,
        ),
        (
            f"web form, {len(huge):,} bytes (10 MiB)",
            lambda: (
                web.post(
                    "/apps/upload/",
                    b"text=" + huge,
                    content_type="application/x-www-form-urlencoded",
                ).status_code
            ),
        ),
        (
            f"web form, pasted {len(over):,} bytes",
            lambda: web.post("/apps/upload/", {"text": over.decode()}).status_code,
        ),
        (
            "web form, billion laughs",
            lambda: web.post("/apps/upload/", {"text": bomb}).status_code,
        ),
    ]
    print(f"upload refusals through Django, median of {args.runs} requests\n")
    rows = [(label, *median_ms(call, args.runs)) for label, call in cases]
    width = max(len(r[0]) for r in rows)
    print(f"{'refused upload':<{width}}  {'ms':>8}  status")
    print(f"{'-' * width}  {'-' * 8}  ------")
    for label, ms, status in rows:
        print(f"{label:<{width}}  {ms:>8.2f}  {status}")


if __name__ == "__main__":
    main()
