"""Time ``inf.yml`` parsing and validation, and how fast hostile uploads are refused.

Run from the repository root::

    python bench/manifests.py [--runs 500] [--dir tests/fixtures/manifests]

Prints the median time of each case in microseconds, with libyaml's parser (the
default when PyYAML has it) and with PyYAML's pure-Python one. Needs no Django
settings: the parser is pure Python.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps_registry.manifest import (  # noqa: E402 - needs the sys.path line above
    HAVE_LIBYAML,
    MAX_MANIFEST_BYTES,
    ManifestError,
    parse_manifest,
)

DEFAULT_DIR = ROOT / "tests" / "fixtures" / "manifests"  # copies of the shared manifests


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 10**levels strings once expanded, under 1 KiB written."""
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "name: bomb\n" + "\n".join(lines) + "\n"


def median_us(call: Callable[[], object], runs: int, budget_s: float = 2.0) -> float:
    """Median wall time of ``call`` in microseconds over ``runs`` calls.

    Slow cases get fewer runs (at least 11) so that each case takes about ``budget_s``.
    """
    start = time.perf_counter()
    call()  # warm up caches and imports outside the measurement
    first = time.perf_counter() - start
    runs = min(runs, max(11, int(budget_s / max(first, 1e-9))))
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def refused(data: str | bytes, *, use_libyaml: bool) -> Callable[[], object]:
    def call() -> object:
        try:
            parse_manifest(data, use_libyaml=use_libyaml)
        except ManifestError as exc:
            return exc
        raise AssertionError("expected the upload to be refused")

    return call


def accepted(data: bytes, *, use_libyaml: bool) -> Callable[[], object]:
    return lambda: parse_manifest(data, use_libyaml=use_libyaml)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    aligned = ["<" if i == 0 else ">" for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, aligned, widths, strict=True))

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="calls per case (default 500)")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="directory of *.inf.yml")
    args = parser.parse_args()
    parsers = [True, False] if HAVE_LIBYAML else [False]
    parser_names = ["libyaml µs" if p else "pure-Python µs" for p in parsers]

    print(f"inf.yml parse + validate, median of {args.runs} runs ({args.dir})\n")
    rows = []
    for path in sorted(args.dir.glob("*.inf.yml")):
        data = path.read_bytes()
        manifest = parse_manifest(data)
        timings = [f"{median_us(accepted(data, use_libyaml=p), args.runs):.1f}" for p in parsers]
        counts = [str(len(manifest.secrets)), str(len(manifest.integrations))]
        rows.append([path.name, str(len(data)), *timings, *counts])
    print_table(["manifest", "bytes", *parser_names, "secrets", "integrations"], rows)

    over_limit = b"name: big\n#" + b"x" * MAX_MANIFEST_BYTES + b"\n"
    huge = b"name: huge\n#" + b"x" * (10 * 1024 * 1024) + b"\n"
    hostile: list[tuple[str, str | bytes]] = [
        (f"upload of {len(over_limit):,} bytes (64 KiB + 12)", over_limit),
        (f"upload of {len(huge):,} bytes (10 MiB)", huge),
        (f"billion laughs ({len(billion_laughs())} bytes, 10**9 expanded)", billion_laughs()),
        ("!!python/object/apply:os.system tag", "name: !!python/object/apply:os.system [ls]\n"),
        ("nested 10,000 deep", "name: deep\nx: " + "[" * 10_000 + "]" * 10_000 + "\n"),
    ]
    print(f"\nrefusals, median of up to {args.runs} runs (at least 11, ~2 s per case)\n")
    rows = []
    for label, data in hostile:
        timings = [f"{median_us(refused(data, use_libyaml=p), args.runs):.1f}" for p in parsers]
        rows.append([label, *timings])
    print_table(["refused upload", *parser_names], rows)


if __name__ == "__main__":
    main()
