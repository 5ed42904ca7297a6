"""Property tests: whatever is uploaded, ``parse_manifest`` returns a Manifest or raises
ManifestError, and a well-formed manifest always comes back as it was written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps_registry.manifest import (
    ENV_NAME_RE,
    HAVE_LIBYAML,
    SLUG_RE,
    CoreSchemaResolver,
    Manifest,
    ManifestError,
    Requirement,
    parse_manifest,
)
from integrations.core.catalogue import BUILTIN as catalogue
from integrations.core.secret_rules import BUILTIN_ENV_NAMES

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"
REAL = {path.name: path.read_text() for path in sorted(FIXTURES.glob("*.inf.yml"))}
PARSERS = [True, False] if HAVE_LIBYAML else [False]

FAST = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Characters that mean something to YAML, plus a few that are awkward for a reader.
YAML_CHARS = (
    list(":-[]{}&*!#|>'\"\n ,?%@`~\t\\<=")
    + list("aZ09_.")
    + [
        "\r",
        "\x00",
        "\x85",
        "\ufeff",
        "é",
        "\U0001f600",
        "\u2028",
    ]
)


class CoreSchemaDumper(yaml.SafeDumper):
    """Quotes the strings that YAML 1.2 would read as something else (``1e5``)."""

    yaml_implicit_resolvers = CoreSchemaResolver.yaml_implicit_resolvers


def parse_or_refuse(data: str | bytes, *, use_libyaml: bool = True) -> Manifest | ManifestError:
    """Parse ``data``; anything but a Manifest or a well-formed ManifestError fails the test."""
    try:
        manifest = parse_manifest(data, use_libyaml=use_libyaml)
    except ManifestError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.line >= 1
            assert problem.column >= 1
            assert isinstance(problem.path, str)
            assert problem.message
        assert str(exc).count("\n") == len(exc.problems) - 1
        return exc
    assert isinstance(manifest, Manifest)
    assert SLUG_RE.fullmatch(manifest.name)
    assert manifest.namespace is None or SLUG_RE.fullmatch(manifest.namespace)
    secret_keys = [s.key for s in manifest.secrets]
    assert all(ENV_NAME_RE.fullmatch(key) for key in secret_keys)
    assert len(set(secret_keys)) == len(secret_keys)
    integration_keys = [i.key for i in manifest.integrations]
    assert all(isinstance(key, str) and key for key in integration_keys)
    assert len(set(integration_keys)) == len(integration_keys)
    assert all(isinstance(r.optional, bool) for r in manifest.secrets + manifest.integrations)
    return manifest


def same_outcome(a: Manifest | ManifestError, b: Manifest | ManifestError) -> bool:
    if isinstance(a, ManifestError) and isinstance(b, ManifestError):
        return a.problems == b.problems
    return a == b


# --- random input -------------------------------------------------------------------


@FAST
@given(text=st.text(), use_libyaml=st.sampled_from(PARSERS))
def test_random_text(text: str, use_libyaml: bool) -> None:
    parse_or_refuse(text, use_libyaml=use_libyaml)


@FAST
@given(text=st.text(alphabet=st.sampled_from(YAML_CHARS)), use_libyaml=st.sampled_from(PARSERS))
def test_random_yaml_punctuation(text: str, use_libyaml: bool) -> None:
    parse_or_refuse(text, use_libyaml=use_libyaml)


@FAST
@given(data=st.binary())
def test_random_bytes(data: bytes) -> None:
    parse_or_refuse(data)


@FAST
@given(data=st.binary(), name=st.sampled_from(sorted(REAL)))
def test_random_bytes_spliced_into_a_real_manifest(data: bytes, name: str) -> None:
    text = REAL[name].encode()
    middle = len(text) // 2
    parse_or_refuse(text[:middle] + data + text[middle:])


# --- mutations of the real manifests ------------------------------------------------


@st.composite
def mutated_manifests(draw: st.DrawFn) -> str:
    text = REAL[draw(st.sampled_from(sorted(REAL)))]
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        operation = draw(
            st.sampled_from(
                [
                    "delete-char",
                    "duplicate-char",
                    "insert-char",
                    "delete-line",
                    "duplicate-line",
                    "insert-line",
                    "swap-lines",
                    "reindent-line",
                ]
            )
        )
        lines = text.splitlines(keepends=True) or [""]
        if operation.endswith("-char"):
            at = draw(st.integers(min_value=0, max_value=max(len(text) - 1, 0)))
            if operation == "delete-char":
                text = text[:at] + text[at + 1 :]
            elif operation == "duplicate-char":
                text = text[:at] + text[at : at + 1] + text[at:]
            else:
                text = text[:at] + draw(st.sampled_from(YAML_CHARS)) + text[at:]
            continue
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        if operation == "delete-line":
            del lines[at]
        elif operation == "duplicate-line":
            lines.insert(at, lines[at])
        elif operation == "insert-line":
            line = draw(st.text(alphabet=st.sampled_from(YAML_CHARS), max_size=30))
            lines.insert(at, line + "\n")
        elif operation == "swap-lines":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        else:
            indent = " " * draw(st.integers(min_value=0, max_value=8))
            lines[at] = indent + lines[at].lstrip(" ")
        text = "".join(lines)
    return text


@FAST
@given(text=mutated_manifests(), use_libyaml=st.sampled_from(PARSERS))
def test_mutated_real_manifests(text: str, use_libyaml: bool) -> None:
    parse_or_refuse(text, use_libyaml=use_libyaml)


@FAST
@given(text=mutated_manifests())
def test_mutated_real_manifests_as_bytes(text: str) -> None:
    parse_or_refuse(text.encode("utf-8", "surrogatepass"))


# --- structured: values of the wrong type anywhere ----------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(["yes", "no", "on", "true", "0o17", "0x1F", "1_000", "~", "", "FAL_KEY"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.booleans(), children, max_size=4)
    ),
    max_leaves=12,
)


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths_in(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths_in(child, (*prefix, index))
    return found


def replace_at(document: Any, path: tuple[Any, ...], new: Any) -> None:
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new


@st.composite
def retyped_manifests(draw: st.DrawFn) -> str:
    document = yaml.safe_load(REAL[draw(st.sampled_from(sorted(REAL)))])
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(paths_in(document)))
        replace_at(document, path, draw(values))
    if draw(st.booleans()):
        document[draw(st.text(max_size=10))] = draw(values)
    dumped: str = yaml.safe_dump(
        document, sort_keys=False, allow_unicode=draw(st.booleans()), default_flow_style=None
    )
    return dumped


@settings(FAST, max_examples=150)
@given(text=retyped_manifests())
def test_retyped_real_manifests(text: str) -> None:
    outcome = parse_or_refuse(text)
    if HAVE_LIBYAML:
        assert same_outcome(outcome, parse_or_refuse(text, use_libyaml=False))


# --- structured: well-formed manifests come back as written -------------------------

# Dots too (``model-2.5-flash``), never two in a row.
slugs = st.from_regex(
    r"[a-z0-9](?:[a-z0-9_-]{0,30}(?:\.[a-z0-9_-]{1,8}){0,3}[a-z0-9])?", fullmatch=True
)
# Not the names integrations hand out: those are refused as secrets.
env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,30}", fullmatch=True).filter(
    lambda name: name not in BUILTIN_ENV_NAMES
)
integration_keys = st.sampled_from(sorted(catalogue.by_key)) | st.from_regex(
    r"[a-z][a-z0-9_]{0,10}\.[a-z][a-z0-9_.]{0,10}", fullmatch=True
)
# PyYAML's emitter writes NEL and the Unicode line separators raw, and every YAML
# reader then takes them for line breaks; that is the emitter's bug, not ours. NUL is
# refused on purpose (PostgreSQL cannot store it): test_manifest_parse covers it.
descriptions = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\x85\u2028\u2029"), max_size=80
)


@st.composite
def requirement_lists(draw: st.DrawFn, keys: st.SearchStrategy[str]) -> list[dict[str, Any]]:
    unique_keys = draw(st.lists(keys, unique=True, max_size=6))
    entries = []
    for key in unique_keys:
        entry: dict[str, Any] = {"key": key}
        if draw(st.booleans()):
            entry["description"] = draw(descriptions)
        if draw(st.booleans()):
            entry["optional"] = draw(st.booleans())
        entries.append(entry)
    return entries


def expected_requirements(entries: list[dict[str, Any]]) -> tuple[Requirement, ...]:
    return tuple(
        Requirement(e["key"], e.get("description", ""), e.get("optional", False)) for e in entries
    )


@FAST
@given(
    name=slugs,
    namespace=st.none() | slugs,
    secrets=requirement_lists(env_names),
    integrations=requirement_lists(integration_keys),
    ram=st.integers(min_value=0, max_value=2**63 - 1),
    description=descriptions,
    allow_unicode=st.booleans(),
    flow=st.sampled_from([None, True, False]),
)
def test_well_formed_manifests_round_trip(
    name: str,
    namespace: str | None,
    secrets: list[dict[str, Any]],
    integrations: list[dict[str, Any]],
    ram: int,
    description: str,
    allow_unicode: bool,
    flow: bool | None,
) -> None:
    document: dict[str, Any] = {"name": name, "description": description}
    if namespace is not None:
        document["namespace"] = namespace
    document["secrets"] = secrets
    document["integrations"] = integrations
    document["resources"] = {"gpu": {"count": 0, "vram": 0, "type": "none"}, "ram": ram}
    text = yaml.dump(
        document,
        Dumper=CoreSchemaDumper,
        sort_keys=False,
        allow_unicode=allow_unicode,
        default_flow_style=flow,
    )

    for use_libyaml in PARSERS:
        manifest = parse_or_refuse(text, use_libyaml=use_libyaml)
        assert isinstance(manifest, Manifest), str(manifest)
        assert manifest.name == name
        assert manifest.namespace == namespace
        assert manifest.description == description
        assert manifest.secrets == expected_requirements(secrets)
        assert manifest.integrations == expected_requirements(integrations)
        assert manifest.resources["ram"] == ram
        unknown = [e["key"] for e in integrations if e["key"] not in catalogue.by_key]
        assert len(manifest.warnings) == len(unknown)
