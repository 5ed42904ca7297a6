"""What the benches print about the machine they ran on (both share it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_and_load() -> list[str]:
    """The CPU model and count, and the load average when the bench started."""
    model = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = Path("/proc/loadavg").read_text().split()[:3]
    return [
        f"CPU: {os.cpu_count()} x {model or platform.processor()}",
        f"load average at start: {' '.join(load)}",
    ]


def postgres(*names: str) -> tuple[str, dict[str, str]]:
    """The server's version (without the build line) and the named settings, through
    Django's connection."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        version = cur.fetchone()[0].split(" on ")[0]
        values = {}
        for name in names:
            cur.execute(f"SHOW {name}")  # names are the bench's own constants
            values[name] = cur.fetchone()[0]
    return version, values
