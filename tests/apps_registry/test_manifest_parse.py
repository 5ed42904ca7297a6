"""``inf.yml`` parsing and validation: real manifests, broken ones, hostile ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apps_registry.manifest import (
    HAVE_LIBYAML,
    MAX_ALIASES,
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    ManifestProblem,
    Requirement,
    parse_manifest,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "manifests"
PARSERS = [pytest.param(True, id="libyaml"), pytest.param(False, id="pure-python")]


def problems_of(text: str | bytes, *, use_libyaml: bool = True) -> list[ManifestProblem]:
    with pytest.raises(ManifestError) as excinfo:
        parse_manifest(text, use_libyaml=use_libyaml)
    return excinfo.value.problems


# --- the real manifests -------------------------------------------------------------

EXPECTED = {
    "api-discord-message-send.inf.yml": (
        "discord",
        "message-send",
        (),
        (Requirement("discord.bot", "Send messages to Discord channels via bot"),),
    ),
    "api-falai-dia-tts.inf.yml": (
        "falai",
        "dia-tts",
        (Requirement("FAL_KEY", "fal.ai API key for model access"),),
        (),
    ),
    "api-google-gcp-vertex-veo-3.inf.yml": (
        "google",
        "veo-3-1",
        (
            Requirement(
                "GCP_VIDEO_OUTPUT_BUCKET",
                "GCS bucket URI for video output (e.g. gs://bucket-name/veo-output/)",
                optional=True,
            ),
        ),
        (Requirement("gcp.vertex_ai", "Access Vertex AI models (Veo, etc.)"),),
    ),
    "api-google-gmail.inf.yml": (
        "google",
        "gmail",
        (),
        (
            Requirement("google.gmail.send", "Send emails on your behalf"),
            Requirement("google.gmail.modify", "Read, label, archive, and organize emails"),
            Requirement("google.gmail.compose", "Create and update email drafts"),
        ),
    ),
    "api-google-sheets.inf.yml": (
        "google",
        "sheets",
        (),
        (Requirement("google.sheets", "Full Google Sheets access"),),
    ),
    "api-x-article-publish.inf.yml": (
        "x",
        "article-publish",
        (),
        (
            Requirement("x.tweet.write", "Create and publish articles on X.com"),
            Requirement("x.media.write", "Upload images and media for articles"),
        ),
    ),
    "native-agents-browser-use.inf.yml": (None, "browser-use", (), ()),
    # Published as real apps are: an empty namespace (the uploader's) and a version in
    # the name.
    "api-google-gemini-model-2.5-flash.inf.yml": (
        None,
        "model-2.5-flash",
        (Requirement("GEMINI_API_KEY", "Gemini API key from Google AI Studio"),),
        (),
    ),
}


def test_every_fixture_is_expected() -> None:
    assert sorted(p.name for p in FIXTURES.glob("*.inf.yml")) == sorted(EXPECTED)


@pytest.mark.parametrize("use_libyaml", PARSERS)
@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_real_manifest_parses(filename: str, use_libyaml: bool) -> None:
    namespace, name, secrets, integrations = EXPECTED[filename]
    manifest = parse_manifest((FIXTURES / filename).read_bytes(), use_libyaml=use_libyaml)

    assert manifest.namespace == namespace
    assert manifest.name == name
    assert manifest.secrets == secrets
    assert manifest.integrations == integrations
    assert manifest.warnings == ()
    assert manifest.extra == {}
    assert manifest.kernel == "python-3.11"
    assert manifest.resources["gpu"] == {"count": 0, "vram": 0, "type": "none"}


def test_real_manifest_other_fields() -> None:
    veo = parse_manifest((FIXTURES / "api-google-gcp-vertex-veo-3.inf.yml").read_text())
    assert veo.category == "video"
    assert veo.metadata == {
        "checksum": "d4eb1a2d282b14d56936e6435fcebd76475c1667dd010d22ac140092fb37fe5b"
    }
    assert set(veo.images) == {"card", "thumbnail", "banner"}
    assert veo.env == {}
    assert veo.resources == {"gpu": {"count": 0, "vram": 0, "type": "none"}, "ram": 0}

    discord = parse_manifest((FIXTURES / "api-discord-message-send.inf.yml").read_text())
    assert discord.images == {"card": "", "thumbnail": "", "banner": ""}
    assert discord.resources["ram"] == 2_000_000_000

    browser = parse_manifest((FIXTURES / "native-agents-browser-use.inf.yml").read_text())
    assert [f.name for f in browser.functions] == [
        "open",
        "state",
        "interact",
        "screenshot",
        "execute",
        "close",
    ]
    assert browser.functions[0].description == "Navigate to URL and configure browser (entry point)"
    assert browser.resources == {"gpu": {"count": 0, "vram": 0, "type": "none"}, "ram": 4}


def test_str_bytes_bom_and_crlf_agree() -> None:
    text = (FIXTURES / "api-google-gmail.inf.yml").read_text()
    expected = parse_manifest(text)
    assert parse_manifest(text.encode()) == expected
    assert parse_manifest(b"\xef\xbb\xbf" + text.encode()) == expected
    assert parse_manifest(text.replace("\n", "\r\n")) == expected


def test_manifest_is_frozen() -> None:
    manifest = parse_manifest("name: app\n")
    with pytest.raises(AttributeError):
        manifest.name = "other"  # type: ignore[misc]


def test_minimal_manifest_defaults() -> None:
    manifest = parse_manifest("name: app\n")
    assert manifest == Manifest(name="app")
    assert manifest.secrets == ()
    assert manifest.integrations == ()
    assert manifest.description == ""


def test_optional_flags_and_yaml_12_booleans() -> None:
    manifest = parse_manifest(
        "name: app\n"
        "description: yes\n"  # a string under YAML 1.2, not True
        "secrets:\n"
        "  - key: A\n"
        "    optional: true\n"
        "  - key: B\n"
        "    optional: False\n"
        "  - key: C\n"
        "    description: on\n"
    )
    assert manifest.description == "yes"
    assert manifest.secrets == (
        Requirement("A", "", optional=True),
        Requirement("B", "", optional=False),
        Requirement("C", "on", optional=False),
    )


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "0",
        "veo-3-1",
        "message-send",
        "browser_use",
        "a" * 64,
        "x1-y_2",
        "model-2.5-flash",
        "gemini-2.0",
        "a.b.c",
    ],
)
def test_slug_accepts(name: str) -> None:
    assert parse_manifest(f"name: '{name}'\nnamespace: '{name}'\n").name == name


# --- broken manifests: one expected problem each ------------------------------------

N = "name: app\n"
S = N + "secrets:\n"
I = N + "integrations:\n"  # noqa: E741
R = N + "resources:\n"
G = R + "  gpu:\n"
F = N + "functions:\n"
SLUG = "must be a slug"
ENV = "is not an environment variable name"
STR_INT = "must be a string, not an integer (quote it)"
WHOLE = "must be a whole number"
BOOL_STR = "must be true or false, not a string"
TAG = "explicit YAML tags are not allowed"
MISSING = "missing required field"
ALIAS_BOMB = (
    N
    + "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"b{i}: &b{i} [" + ", ".join(["*" + ("a" if i == 0 else f"b{i - 1}")] * 10) + "]\n"
        for i in range(6)
    )
)

# (id, text, message fragment, line, column, path)
BROKEN = [
    ("name-missing", "description: hi\n", MISSING, 1, 1, "name"),
    ("name-null", "name:\ndescription: hi\n", "must not be empty", 1, 6, "name"),
    ("name-upper", "name: MyApp\n", SLUG, 1, 7, "name"),
    ("name-space", 'name: "my app"\n', SLUG, 1, 7, "name"),
    ("name-leading-hyphen", "name: -app\n", SLUG, 1, 7, "name"),
    ("name-trailing-hyphen", "name: app-\n", SLUG, 1, 7, "name"),
    ("name-too-long", "name: " + "a" * 65 + "\n", SLUG, 1, 7, "name"),
    ("name-empty-string", 'name: ""\n', SLUG, 1, 7, "name"),
    ("name-int", "name: 123\n", STR_INT, 1, 7, "name"),
    ("name-list", "name: [a]\n", "must be a string, not a list", 1, 7, "name"),
    ("namespace-upper", N + "namespace: Google\n", "(got 'Google')", 2, 12, "namespace"),
    ("namespace-dots", N + "namespace: a..b\n", "look like a path", 2, 12, "namespace"),
    ("name-dotdot", 'name: ".."\n', "look like a path", 1, 7, "name"),
    ("name-dot", 'name: "."\n', "look like a path", 1, 7, "name"),
    ("name-leading-dot", "name: .app\n", "look like a path", 1, 7, "name"),
    ("name-trailing-dot", "name: app.\n", SLUG, 1, 7, "name"),
    ("name-double-dot", "name: model..2\n", "look like a path", 1, 7, "name"),
    ("name-slash", "name: ../etc\n", "look like a path", 1, 7, "name"),
    ("namespace-space", N + 'namespace: " "\n', SLUG, 2, 12, "namespace"),
    ("namespace-bool", N + "namespace: true\n", "not a boolean", 2, 12, "namespace"),
    ("secrets-scalar", N + "secrets: FAL_KEY\n", "must be a list", 2, 10, "secrets"),
    ("secrets-mapping", S + "  key: FAL_KEY\n", "not a mapping", 3, 3, "secrets"),
    ("secret-entry-string", S + "  - FAL_KEY\n", "must be a mapping", 3, 5, "secrets[0]"),
    ("secret-key-lower", S + "  - key: fal_key\n", ENV, 3, 10, "secrets[0].key"),
    ("secret-key-digit", S + "  - key: 1KEY\n", ENV, 3, 10, "secrets[0].key"),
    ("secret-key-hyphen", S + "  - key: FAL-KEY\n", ENV, 3, 10, "secrets[0].key"),
    ("secret-key-missing", S + "  - description: k\n", MISSING, 3, 5, "secrets[0].key"),
    (
        "secret-key-null",
        S + "  - key:\n    description: x\n",
        "must not be empty",
        3,
        9,
        "secrets[0].key",
    ),
    ("secret-key-int", S + "  - key: 123\n", STR_INT, 3, 10, "secrets[0].key"),
    (
        "secret-duplicate",
        S + "  - key: FAL_KEY\n  - key: OTHER\n  - key: FAL_KEY\n",
        "secret 'FAL_KEY' is declared twice (first as secrets[0] on line 3)",
        5,
        10,
        "secrets[2].key",
    ),
    (
        "secret-description-int",
        S + "  - key: A\n    description: 42\n",
        STR_INT,
        4,
        18,
        "secrets[0].description",
    ),
    (
        "secret-description-list",
        S + "  - key: A\n    description: [a]\n",
        "not a list",
        4,
        18,
        "secrets[0].description",
    ),
    (
        "secret-optional-yes",
        S + "  - key: A\n    optional: yes\n",
        BOOL_STR,
        4,
        15,
        "secrets[0].optional",
    ),
    (
        "secret-optional-quoted",
        S + '  - key: A\n    optional: "true"\n',
        BOOL_STR,
        4,
        15,
        "secrets[0].optional",
    ),
    (
        "secret-optional-int",
        S + "  - key: A\n    optional: 1\n",
        "not an integer",
        4,
        15,
        "secrets[0].optional",
    ),
    (
        "secret-optional-null",
        S + "  - key: A\n    optional:\n",
        "not nothing (null)",
        4,
        14,
        "secrets[0].optional",
    ),
    (
        "integrations-scalar",
        N + "integrations: google.sheets\n",
        "must be a list",
        2,
        15,
        "integrations",
    ),
    ("integration-entry-list", I + "  - [google.sheets]\n", "not a list", 3, 5, "integrations[0]"),
    ("integration-key-missing", I + "  - description: s\n", MISSING, 3, 5, "integrations[0].key"),
    ("integration-key-int", I + "  - key: 7\n", STR_INT, 3, 10, "integrations[0].key"),
    (
        "integration-key-empty",
        I + '  - key: ""\n',
        "must not be empty",
        3,
        10,
        "integrations[0].key",
    ),
    ("integration-key-null", I + "  - key: ~\n", "must not be empty", 3, 10, "integrations[0].key"),
    (
        "integration-key-mapping",
        I + "  - key: {a: b}\n",
        "not a mapping",
        3,
        10,
        "integrations[0].key",
    ),
    (
        "integration-duplicate",
        I + "  - key: google.sheets\n  - key: google.sheets\n    optional: true\n",
        "integration 'google.sheets' is declared twice",
        4,
        10,
        "integrations[1].key",
    ),
    (
        "integration-optional-no",
        I + "  - key: google.sheets\n  - key: google.docs\n  - key: x.tweet.read\n"
        "    optional: no\n",
        BOOL_STR,
        6,
        15,
        "integrations[2].optional",
    ),
    (
        "integration-description-mapping",
        I + "  - key: google.sheets\n    description: {a: b}\n",
        "not a mapping",
        4,
        18,
        "integrations[0].description",
    ),
    ("resources-scalar", N + "resources: big\n", "must be a mapping", 2, 12, "resources"),
    ("ram-string", R + "  ram: 4GB\n", f"{WHOLE}, not a string", 3, 8, "resources.ram"),
    ("ram-float", R + "  ram: 1.5\n", f"{WHOLE}, not a number", 3, 8, "resources.ram"),
    ("ram-underscore", R + "  ram: 4_000\n", f"{WHOLE}, not a string", 3, 8, "resources.ram"),
    ("ram-negative", R + "  ram: -1\n", "must be between 0 and", 3, 8, "resources.ram"),
    ("ram-bool", R + "  ram: true\n", f"{WHOLE}, not a boolean", 3, 8, "resources.ram"),
    (
        "ram-over-bigint",
        R + "  ram: 9223372036854775808\n",
        "must be between 0 and",
        3,
        8,
        "resources.ram",
    ),
    (
        "ram-too-many-digits",
        R + "  ram: " + "9" * 5000 + "\n",
        "the number is too large",
        3,
        8,
        "resources.ram",
    ),
    ("gpu-list", R + "  gpu: [1]\n", "must be a mapping", 3, 8, "resources.gpu"),
    ("gpu-count-string", G + "    count: one\n", WHOLE, 4, 12, "resources.gpu.count"),
    ("gpu-count-bool", G + "    count: true\n", "not a boolean", 4, 12, "resources.gpu.count"),
    ("gpu-vram-float", G + "    vram: 2.5e10\n", "not a number", 4, 11, "resources.gpu.vram"),
    ("gpu-type-int", G + "    type: 4090\n", STR_INT, 4, 11, "resources.gpu.type"),
    ("functions-scalar", N + "functions: open\n", "must be a list", 2, 12, "functions"),
    ("function-entry-string", F + "  - open\n", "must be a mapping", 3, 5, "functions[0]"),
    ("function-name-missing", F + "  - description: o\n", MISSING, 3, 5, "functions[0].name"),
    ("function-name-int", F + "  - name: 1\n", STR_INT, 3, 11, "functions[0].name"),
    (
        "function-duplicate",
        F + "  - name: open\n  - name: open\n",
        "function 'open' is declared twice",
        4,
        11,
        "functions[1].name",
    ),
    (
        "function-description-list",
        F + "  - name: open\n    description: [x]\n",
        "not a list",
        4,
        18,
        "functions[0].description",
    ),
    (
        "default-function-unknown",
        F + "  - name: open\ndefault_function: run\n",
        "'run' is not one of the declared functions (open)",
        4,
        19,
        "default_function",
    ),
    ("env-list", N + "env: [A]\n", "must be a mapping", 2, 6, "env"),
    ("env-key-lower", N + "env:\n  path: /bin\n", ENV, 3, 3, "env.path"),
    ("env-value-int", N + "env:\n  PORT: 8080\n", STR_INT, 3, 9, "env.PORT"),
    ("env-value-null", N + "env:\n  TOKEN:\n", "not nothing (null)", 3, 9, "env.TOKEN"),
    ("metadata-list", N + "metadata: [a]\n", "must be a mapping, not a list", 2, 11, "metadata"),
    (
        "odd-key-is-quoted-in-path",
        N + "metadata:\n  a.b:\n    - {1: x}\n",
        "keys must be strings",
        4,
        8,
        "metadata['a.b'][0]",
    ),
    ("metadata-int-key", N + "metadata:\n  1: a\n", "keys must be strings", 3, 3, "metadata"),
    ("images-list", N + "images: [a.png]\n", "must be a mapping", 2, 9, "images"),
    ("images-value-int", N + "images:\n  card: 1\n", STR_INT, 3, 9, "images.card"),
    ("title-int", N + "title: 1\n", STR_INT, 2, 8, "title"),
    ("description-list", N + "description:\n  - a\n", "not a list", 3, 3, "description"),
    ("category-mapping", N + "category: {a: 1}\n", "not a mapping", 2, 11, "category"),
    ("kernel-float", N + "kernel: 3.11\n", "not a number (quote it)", 2, 9, "kernel"),
    ("credentials-string", N + "credentials: google\n", "must be a mapping", 2, 14, "credentials"),
    (
        "credentials-provider-int",
        N + "credentials:\n  provider: 1\n",
        STR_INT,
        3,
        13,
        "credentials.provider",
    ),
    (
        "credentials-secrets-string",
        N + "credentials:\n  secrets: FAL_KEY\n",
        "must be a list",
        3,
        12,
        "credentials.secrets",
    ),
    (
        "duplicate-top-level",
        N + "description: a\ndescription: b\n",
        "duplicate key 'description' (first defined on line 2)",
        3,
        1,
        "description",
    ),
    ("duplicate-name", "name: a\nname: b\n", "duplicate key 'name'", 2, 1, "name"),
    (
        "duplicate-in-entry",
        S + "  - key: A\n    key: B\n",
        "duplicate key 'key'",
        4,
        5,
        "secrets[0].key",
    ),
    (
        "duplicate-in-gpu",
        G + "    count: 0\n    count: 1\n",
        "duplicate key 'count'",
        5,
        5,
        "resources.gpu.count",
    ),
    ("int-top-level-key", N + "1: x\n", "keys must be strings, not an integer", 2, 1, ""),
    ("bool-top-level-key", N + "true: x\n", "keys must be strings, not a boolean", 2, 1, ""),
    ("tag-str", N + "title: !!str 1\n", "(found '!!str')", 2, 8, ""),
    (
        "tag-python",
        N + "title: !!python/object/apply:os.system [ls]\n",
        "(found '!!python/object/apply:os.system')",
        2,
        8,
        "",
    ),
    ("tag-local", N + "title: !foo x\n", TAG, 2, 8, ""),
    ("tag-on-root", "!!map\nname: app\n", TAG, 1, 1, ""),
    ("yaml-unterminated-quote", N + "title: 'abc\n", "a quoted value is never closed", 2, 8, ""),
    ("yaml-two-documents", N + "---\nname: other\n", "expected a single document", 2, 1, ""),
    ("yaml-undefined-alias", N + "title: *nope\n", "found undefined alias 'nope'", 2, 8, ""),
    (
        "yaml-recursive-alias",
        N + "metadata: &m {self: *m}\n",
        "the alias *m refers to a node that contains it",
        2,
        21,
        "",
    ),
    ("not-mapping-list", "- name: app\n", "must be a mapping (key: value), not a list", 1, 1, ""),
    ("not-mapping-scalar", "just text\n", "must be a mapping", 1, 1, ""),
    ("empty", "", "the manifest is empty", 1, 1, ""),
    ("comments-only", "# nothing here\n", "the manifest is empty", 1, 1, ""),
    ("control-char", N + "title: a\x07b\n", "character U+0007 is not allowed", 2, 9, ""),
    (
        "deep-nesting",
        N + "metadata: " + "[" * 60 + "]" * 60 + "\n",
        "nested more than 50",
        2,
        60,
        "",
    ),
    (
        "alias-bomb",
        ALIAS_BOMB,
        "more than 10,000 values, counting each alias as a full copy",
        5,
        45,
        "",
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment", "line", "column", "path"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_broken_manifest(text: str, fragment: str, line: int, column: int, path: str) -> None:
    problems = problems_of(text)

    assert len(problems) == 1, problems
    problem = problems[0]
    assert fragment in problem.message
    assert (problem.line, problem.column, problem.path) == (line, column, path)


def test_enough_broken_cases() -> None:
    assert len(BROKEN) >= 45
    assert len({case[0] for case in BROKEN}) == len(BROKEN)


@pytest.mark.skipif(not HAVE_LIBYAML, reason="needs libyaml")
@pytest.mark.parametrize("text", [pytest.param(case[1], id=case[0]) for case in BROKEN])
def test_both_parsers_agree_on_broken_manifests(text: str) -> None:
    assert problems_of(text, use_libyaml=False) == problems_of(text, use_libyaml=True)


# Syntax errors: the two parsers word them differently but point at the same place, and
# the uploader reads the same plain words from both (apps_registry.manifest.yaml_words).
SYNTAX = [
    ("unclosed-flow", N + "secrets: [a\n", 2, 10, "a list opened with '[' here is never closed"),
    ("unclosed-flow-mapping", N + "env: {A: b\n", 2, 6, "a mapping opened with '{' here"),
    ("unclosed-quote", N + 'title: "abc\n', 2, 8, "a quoted value is never closed"),
    ("key-without-colon", N + "title\nx: 1\n", 2, 1, "this line has no ':' after its key"),
    ("bad-indent", N + "resources:\n  ram: 1\n bad: 2\n", 4, 2, "this line is not indented"),
    (
        "list-item-indent",
        N + "secrets:\n  - key: A\n - key: B\n",
        4,
        2,
        "a list item is not indented like the lines before it",
    ),
    (
        "list-item-too-deep",
        N + "secrets:\n  - key: A\n    - key: B\n",
        4,
        5,
        "a list item is not indented like the lines before it",
    ),
    ("key-after-list", "- a\nname: b\n", 2, 1, "this line does not continue the list"),
    ("tab-indent", N + "resources:\n\tram: 1\n", 3, 1, "YAML indents with spaces only"),
    ("colon-in-plain", N + "title: a: b\n", 2, 9, "the value contains ': '"),
    ("key-under-value", N + "title: x\n  more: y\n", 3, 7, "indented under a value"),
    ("text-after-quote", N + "title: 'a' b\n", 2, 12, "there is more text after the value"),
    ("bad-first-char", N + "title: @me\n", 2, 8, "a value cannot start with '@'"),
    ("closing-bracket", N + "title: ]\n", 2, 8, "a value cannot start with ']'"),
    ("ends-in-a-list", N + "secrets: [a,\n", 3, 1, "the manifest ends inside a list ('[')"),
    ("empty-anchor", N + "title: &\n", 2, 9, "'&' starts an anchor name here"),
    # One the parsers have no plain words for: their own, in parentheses.
    ("block-scalar-indicator", N + "title: |0\n  a\n", 2, 9, "this line is not valid YAML ("),
]


@pytest.mark.parametrize("use_libyaml", PARSERS)
@pytest.mark.parametrize(
    ("text", "line", "column", "words"), [pytest.param(*c[1:], id=c[0]) for c in SYNTAX]
)
def test_invalid_yaml_is_said_in_plain_words_at_its_line(
    text: str, line: int, column: int, words: str, use_libyaml: bool
) -> None:
    problems = problems_of(text, use_libyaml=use_libyaml)

    assert [(p.line, p.column, p.path) for p in problems] == [(line, column, "")]
    assert words in problems[0].message, problems[0].message


def test_all_errors_are_collected_in_document_order() -> None:
    problems = problems_of(
        "name: Bad Name\n"
        "secrets:\n"
        "  - key: lower\n"
        "    optional: yes\n"
        "integrations:\n"
        "  - description: no key\n"
        "resources:\n"
        "  ram: lots\n"
    )

    assert [(p.line, p.column, p.path) for p in problems] == [
        (1, 7, "name"),
        (3, 10, "secrets[0].key"),
        (4, 15, "secrets[0].optional"),
        (6, 5, "integrations[0].key"),
        (8, 8, "resources.ram"),
    ]


def test_error_str_lists_line_column_path_and_message() -> None:
    with pytest.raises(ManifestError) as excinfo:
        parse_manifest("name: app\nsecrets:\n  - key: A\n    optional: yes\n- x\n")
    assert str(excinfo.value).startswith("5:1: a list item is not indented like the lines")

    with pytest.raises(ManifestError) as excinfo:
        parse_manifest("name: App\nsecrets:\n  - key: A\n    optional: yes\n")
    lines = str(excinfo.value).splitlines()
    assert lines[0].startswith("1:7: name: must be a slug")
    assert lines[1] == "4:15: secrets[0].optional: must be true or false, not a string"


def test_merge_keys_are_refused() -> None:
    problems = problems_of(N + "base: &b {key: A}\nsecrets:\n  - <<: *b\n")
    assert problems[0] == ManifestProblem(4, 5, "secrets[0]", "merge keys (<<) are not supported")


def test_env_values_are_never_quoted_in_errors() -> None:
    problems = problems_of(N + "env:\n  TOKEN: [sk-live-abc123]\n  bad-name: sk-live-xyz789\n")
    assert problems
    assert not any("sk-live" in str(p) for p in problems)


# --- warnings -----------------------------------------------------------------------


def test_unknown_top_level_fields_are_kept_and_warned_about() -> None:
    manifest = parse_manifest(
        N + "descripton: typo\nhomepage: https://example.com\nlabels: [a, b]\n"
    )

    assert manifest.extra == {
        "descripton": "typo",
        "homepage": "https://example.com",
        "labels": ["a", "b"],
    }
    assert manifest.description == ""
    assert manifest.warnings == (
        ManifestProblem(
            2, 1, "descripton", "unknown field 'descripton' (kept); did you mean 'description'?"
        ),
        ManifestProblem(3, 1, "homepage", "unknown field 'homepage' (kept)"),
        ManifestProblem(4, 1, "labels", "unknown field 'labels' (kept)"),
    )


def test_unknown_integration_key_is_a_warning_with_a_suggestion() -> None:
    manifest = parse_manifest(
        I + "  - key: google.sheet\n  - key: google.sheets\n  - key: acme.rockets\n"
    )

    assert [r.key for r in manifest.integrations] == [
        "google.sheet",
        "google.sheets",
        "acme.rockets",
    ]
    assert manifest.warnings == (
        ManifestProblem(
            3,
            10,
            "integrations[0].key",
            "unknown integration 'google.sheet'; did you mean 'google.sheets'?",
        ),
        ManifestProblem(5, 10, "integrations[2].key", "unknown integration 'acme.rockets'"),
    )


def test_unknown_fields_in_entries_and_resources_are_warnings() -> None:
    manifest = parse_manifest(
        S + "  - key: A\n    optinal: true\n" + "resources:\n  ram: 1\n  disk: 10\n"
    )

    assert manifest.secrets == (Requirement("A"),)
    assert manifest.resources == {"ram": 1, "disk": 10}
    assert [(w.line, w.column, w.path) for w in manifest.warnings] == [
        (4, 5, "secrets[0].optinal"),
        (7, 3, "resources.disk"),
    ]
    assert "did you mean 'optional'?" in manifest.warnings[0].message


def test_warnings_do_not_hide_errors() -> None:
    problems = problems_of(
        N + "homepage: x\nintegrations:\n  - key: acme.rockets\n    optional: 1\n"
    )
    assert [p.path for p in problems] == ["integrations[0].optional"]


def test_null_optional_fields_count_as_absent() -> None:
    manifest = parse_manifest(N + "namespace:\nenv:\nsecrets:\nmetadata: ~\nresources: null\n")
    assert manifest == Manifest(name="app")


# --- hostile input ------------------------------------------------------------------


@pytest.mark.parametrize("use_libyaml", PARSERS)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("name: !!python/object:os.system {}\n", id="python-object"),
        pytest.param("name: !!python/name:os.system\n", id="python-name"),
        pytest.param("!!python/object/new:os.system [echo hi]\n", id="python-new-root"),
        pytest.param("name: app\nx: !!binary aGVsbG8=\n", id="binary"),
        pytest.param("name: app\nx: !!timestamp 2024-01-01\n", id="timestamp"),
        pytest.param("%TAG !e! tag:example.com,2000:\n---\nname: !e!foo x\n", id="tag-directive"),
    ],
)
def test_tags_are_refused(text: str, use_libyaml: bool) -> None:
    problems = problems_of(text, use_libyaml=use_libyaml)
    assert problems
    assert all(p.message.startswith("explicit YAML tags are not allowed") for p in problems)


def test_timestamps_stay_strings() -> None:
    manifest = parse_manifest(N + "released: 2024-01-01\n")
    assert manifest.extra == {"released": "2024-01-01"}


def test_size_limit_is_checked_before_parsing() -> None:
    padding = MAX_MANIFEST_BYTES - len(N) - 2
    exactly = N + "#" + "x" * padding + "\n"
    assert len(exactly.encode()) == MAX_MANIFEST_BYTES
    assert parse_manifest(exactly).name == "app"
    assert parse_manifest(exactly.encode()).name == "app"

    too_big = exactly + "#"
    for upload in (too_big, too_big.encode()):
        problems = problems_of(upload)
        assert problems == [
            ManifestProblem(1, 1, "", "the manifest is too large: over 65,536 bytes (64 KiB)")
        ]

    # 40,000 characters but 80,000 bytes of UTF-8.
    assert len(problems_of(N + "title: " + "é" * 40_000 + "\n")) == 1

    # A 10 MiB upload of invalid YAML is refused without being read.
    start = time.perf_counter()
    problems_of(b"[" * (10 * 1024 * 1024))
    assert time.perf_counter() - start < 0.1


def billion_laughs(levels: int = 9) -> str:
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "name: app\n" + "\n".join(lines) + "\n"


@pytest.mark.parametrize("use_libyaml", PARSERS)
def test_billion_laughs_is_refused_fast(use_libyaml: bool) -> None:
    text = billion_laughs()
    start = time.perf_counter()
    problems = problems_of(text, use_libyaml=use_libyaml)
    elapsed = time.perf_counter() - start

    assert elapsed < 0.05
    assert len(problems) == 1
    assert "counting each alias as a full copy" in problems[0].message
    assert problems[0].line == 6  # lol4 (11,111 nodes) is the first level over the limit


def test_alias_count_is_limited() -> None:
    ok = N + "a: &a x\nrefs: [" + ", ".join(["*a"] * MAX_ALIASES) + "]\n"
    assert len(parse_manifest(ok).extra["refs"]) == MAX_ALIASES

    too_many = N + "a: &a x\nrefs: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"
    problems = problems_of(too_many)
    assert len(problems) == 1
    assert problems[0].message == "too many aliases (*name): the limit is 100"
    assert problems[0].line == 3


def test_small_aliases_are_allowed() -> None:
    manifest = parse_manifest(
        N + "d: &d Shared description\n"
        "secrets:\n  - key: A\n    description: *d\n  - key: B\n    description: *d\n"
    )
    assert [s.description for s in manifest.secrets] == ["Shared description"] * 2


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        pytest.param(b"\xff", 1, 1, id="lone-ff"),
        pytest.param(b"name: app\ntitle: caf\xe9\n", 2, 11, id="latin-1"),
        pytest.param("name: app\ntitle: é\xe9".encode()[:-2] + b"\xc3", 2, 9, id="truncated"),
        pytest.param(b"\xff\xfen\x00a\x00m\x00e\x00", 1, 1, id="utf-16"),
        pytest.param(b"name: \xed\xa0\x80\n", 1, 7, id="encoded-surrogate"),
    ],
)
def test_bad_utf8_is_refused_with_its_position(data: bytes, line: int, column: int) -> None:
    problems = problems_of(data)
    assert len(problems) == 1
    assert (problems[0].line, problems[0].column, problems[0].path) == (line, column, "")
    assert "not valid UTF-8" in problems[0].message


def test_lone_surrogate_in_str_is_refused() -> None:
    problems = problems_of("name: app\ntitle: \ud800\n")
    assert (problems[0].line, problems[0].column) == (2, 8)


@pytest.mark.parametrize("text", ["\ufeffname: a\x07\n", b"\xef\xbb\xbfname: a\x07\n"])
def test_byte_order_mark_does_not_shift_columns(text: str | bytes) -> None:
    problems = problems_of(text)
    assert (problems[0].line, problems[0].column) == (1, 8)


def test_nul_byte_is_refused() -> None:
    problems = problems_of(b"name: app\x00\n")
    assert problems[0].message == "character U+0000 is not allowed in YAML"
    assert (problems[0].line, problems[0].column) == (1, 10)


def test_other_argument_types_are_a_programming_error() -> None:
    with pytest.raises(TypeError):
        parse_manifest(None)  # type: ignore[arg-type]


# --- empty namespace, reserved secret names, unstorable strings -----------------------


@pytest.mark.parametrize("use_libyaml", PARSERS)
def test_empty_namespace_is_absent(use_libyaml: bool) -> None:
    manifest = parse_manifest('namespace: ""\nname: model-2.5-flash\n', use_libyaml=use_libyaml)
    assert (manifest.namespace, manifest.name) == (None, "model-2.5-flash")


@pytest.mark.parametrize(
    "key",
    [
        "GOOGLE_OAUTH_ACCESS_TOKEN",
        "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
        "GOOGLE_OAUTH_CREDENTIALS",
        "X_ACCESS_TOKEN",
        "GOOGLE_SA_CREDENTIALS",
        "GCP_ACCESS_TOKEN",
        "GCP_PROJECT_NUMBER",
        "DISCORD_BOT_TOKEN",
    ],
)
def test_reserved_env_name_refused_as_secret(key: str) -> None:
    problems = problems_of(S + "  - key: FAL_KEY\n  - key: " + key + "\n")
    assert [(p.line, p.column, p.path) for p in problems] == [(4, 10, "secrets[1].key")]
    assert f"{key} is handed out by an integration" in problems[0].message


def test_discord_bot_token_secret_points_to_the_integration() -> None:
    (problem,) = problems_of(S + "  - key: DISCORD_BOT_TOKEN\n")
    assert "declare the integration discord.bot instead" in problem.message


def test_reserved_env_names_can_be_given() -> None:
    # A staff-defined provider's env name, passed in by the upload.
    (problem,) = problems_of_reserved(S + "  - key: ACME_TOKEN\n", {"ACME_TOKEN"})
    assert (problem.line, problem.column, problem.path) == (3, 10, "secrets[0].key")
    assert parse_manifest(S + "  - key: ACME_TOKEN\n").secrets[0].key == "ACME_TOKEN"


def problems_of_reserved(text: str, reserved: set[str]) -> list[ManifestProblem]:
    with pytest.raises(ManifestError) as excinfo:
        parse_manifest(text, reserved_env_names=reserved)
    return excinfo.value.problems


# Escapes YAML allows in double-quoted strings that give what PostgreSQL cannot store
# (NUL in text and JSONB) or what is not a character at all (a lone surrogate).
NUL_ESCAPES = [r"\0", r"\x00", r"\u0000", r"\U00000000"]


@pytest.mark.parametrize("use_libyaml", PARSERS)
@pytest.mark.parametrize("escape", NUL_ESCAPES)
@pytest.mark.parametrize(
    ("template", "line", "column", "path"),
    [
        pytest.param('title: "a{e}b"\n', 2, 8, "title", id="title"),
        pytest.param('namespace: "a{e}"\n', 2, 12, "namespace", id="namespace"),
        pytest.param('"k{e}": 1\n', 2, 1, "", id="unknown-top-level-key"),
        pytest.param('extra: ["{e}"]\n', 2, 9, "extra[0]", id="unknown-top-level-value"),
        pytest.param('metadata:\n  a:\n    b: "{e}"\n', 4, 8, "metadata.a.b", id="nested-metadata"),
        pytest.param('metadata:\n  "{e}": 1\n', 3, 3, "metadata", id="metadata-key"),
        pytest.param('env:\n  TOKEN: "x{e}"\n', 3, 10, "env.TOKEN", id="env-value"),
        pytest.param(
            'functions:\n  - name: f\n    arg: "{e}"\n', 4, 10, "functions[0].arg", id="function"
        ),
        pytest.param(
            'secrets:\n  - key: A\n    description: "{e}"\n',
            4,
            18,
            "secrets[0].description",
            id="secret-description",
        ),
        pytest.param(
            'integrations:\n  - key: x\n    note: "{e}"\n',
            4,
            11,
            "integrations[0].note",
            id="ignored-field",
        ),
        pytest.param("images:\n  card: '' \n  x: \"{e}\"\n", 4, 6, "images.x", id="image"),
    ],
)
def test_escaped_nul_refused(
    use_libyaml: bool, escape: str, template: str, line: int, column: int, path: str
) -> None:
    problems = problems_of(N + template.format(e=escape), use_libyaml=use_libyaml)
    assert [(p.line, p.column, p.path) for p in problems] == [(line, column, path)]
    assert "NUL character (U+0000)" in problems[0].message


def test_escaped_nul_in_env_value_is_not_quoted() -> None:
    (problem,) = problems_of(N + 'env:\n  TOKEN: "sk-live-123\\0"\n')
    assert "sk-live" not in str(problem)


@pytest.mark.parametrize("escape", [r"\ud800", r"\udfff", r"\ud83d\ude00"])
def test_escaped_lone_surrogate_refused(escape: str) -> None:
    # libyaml refuses these escapes itself; PyYAML's pure-Python parser makes them
    # into str that cannot be encoded as UTF-8.
    for use_libyaml in (True, False):
        problems = problems_of(N + f'title: "{escape}"\n', use_libyaml=use_libyaml)
        assert [(p.line) for p in problems] == [2]


def test_other_escaped_control_characters_are_kept() -> None:
    # PostgreSQL stores every other character (U+0001, U+FFFE, ...) in text and JSONB.
    assert parse_manifest(N + 'title: "a\\x01\\ufffe\\U0001F600"\n').title == "a\x01\ufffe😀"
