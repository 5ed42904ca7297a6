"""Parse and validate an app's ``inf.yml`` manifest.

Pure code: no Django, no database, in four modules: ``limits`` (size and encoding,
before any YAML is read), ``safe_yaml`` (composing under the reading rules below),
``schema`` (validating the composed tree) and ``claim`` (which app an upload names,
from the same tree, even when it is not valid); ``problems`` locates what is wrong.
:func:`parse_manifest` turns the uploaded text into a frozen :class:`Manifest` or
raises :class:`ManifestError` listing every problem it found, each with a 1-based line
and column and the path inside the document (``integrations[2].optional``), so that an
uploader can fix them all in one go.

Reading rules (the contract callers and uploaders rely on):

* At most :data:`MAX_MANIFEST_BYTES` (64 KiB) of UTF-8, refused before any YAML is
  read. A UTF-8 byte-order mark is allowed; other encodings are refused.
* One YAML document whose root is a mapping.
* Safe YAML only. Explicit tags (``!!python/object``, ``!!str``, ``!foo``) are
  refused; nothing is ever constructed but ``str``, ``int``, ``float``, ``bool``,
  ``None``, ``list`` and ``dict``. Merge keys (``<<``) are refused.
* Plain scalars resolve by the YAML 1.2 core schema, not PyYAML's YAML 1.1 rules:
  only ``true``/``false`` (any of ``true True TRUE false False FALSE``) are
  booleans, so ``yes``, ``on`` and ``"true"`` are strings; integers are decimal,
  ``0o`` octal or ``0x`` hex (``1_000`` and ``1:20`` are strings); there are no
  implicit timestamps.
* Aliases are bounded: at most :data:`MAX_ALIASES` alias uses, at most
  :data:`MAX_NODES` nodes once every alias is expanded, nesting at most
  :data:`MAX_DEPTH` deep. A "billion laughs" document is refused while it is being
  composed, long before anything is expanded.
* Duplicate mapping keys are refused at the second occurrence.

Schema (see ``DESIGN.md``, "inf.yml"):

* ``name`` is required. ``name`` and ``namespace`` are *slugs*: 1 to 64 characters
  of lowercase ASCII letters, digits, ``-``, ``_`` and ``.``, starting and ending with
  a letter or digit, without ``..`` (``veo-3-1``, ``message-send``, ``browser_use``,
  ``model-2.5-flash``). ``namespace: ""`` (as real apps publish) counts as absent: the
  app goes to the uploader's default namespace.
* ``secrets`` and ``integrations`` are lists of ``{key, description, optional}``.
  ``key`` is required; ``description`` defaults to ``""``; ``optional`` defaults
  to ``false`` (required) and must be a real ``true``/``false`` literal. A secret
  ``key`` is an environment-variable name (``^[A-Z_][A-Z0-9_]*$``) that no integration
  hands out (``reserved_env_names``: ``GOOGLE_OAUTH_ACCESS_TOKEN`` and the like,
  declared through ``integrations:`` instead); an integration
  ``key`` is any non-empty string, and one the capability catalogue does not know
  (``catalogue``: the built-in one unless given; the upload gives the one with the
  providers staff defined) is a warning with a "did you mean" suggestion. A key
  declared twice is an error.
* ``title``, ``description``, ``category``, ``kernel``, ``default_function``:
  strings. ``default_function`` must name a declared function when ``functions``
  is given.
* ``metadata``: a mapping. ``images``: a mapping of strings to strings. ``env``: a
  mapping of environment-variable names to strings.
* ``resources``: ``gpu: {count, vram, type}`` and ``ram``; ``count``, ``vram`` and
  ``ram`` are non-negative integers, ``type`` a string.
* ``credentials``: a mapping; ``provider`` a string and ``secrets`` a list when given.
* ``functions``: a list of mappings, each with a unique non-empty string ``name``
  and an optional string ``description``; other fields are kept.
* An optional field given as null (``env:`` with nothing after it) counts as absent,
  except ``optional``, which must be ``true`` or ``false``.
* Unknown top-level fields are warnings and are kept in :attr:`Manifest.extra`;
  unknown fields inside ``secrets``/``integrations`` entries and ``resources`` are
  warnings too.

No string anywhere (a key, a value, a field that is kept or ignored) may hold U+0000
(NUL, which PostgreSQL's text and JSONB cannot store, written as an escape ``"\0"``,
``"\x00"`` or ``"\u0000"``) or a lone surrogate (``"\ud800"``, which is not a
character and cannot be encoded); it is refused with its line and column.

Error messages never quote the values of ``env``, so a secret pasted there by
mistake does not end up in an error page.
"""

from apps_registry.manifest.claim import Claim, claim_of
from apps_registry.manifest.limits import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_MANIFEST_BYTES,
    MAX_NODES,
    decode_manifest_text,
    locate_offset,
)
from apps_registry.manifest.problems import ManifestError, ManifestProblem
from apps_registry.manifest.safe_yaml import HAVE_LIBYAML, CoreSchemaResolver, compose_manifest
from apps_registry.manifest.schema import (
    ENV_NAME_RE,
    KNOWN_FIELDS,
    SLUG_RE,
    Function,
    Manifest,
    Requirement,
    parse_manifest,
    validate_manifest_tree,
)
from apps_registry.manifest.yaml_words import split_lines

__all__ = [
    "ENV_NAME_RE",
    "HAVE_LIBYAML",
    "KNOWN_FIELDS",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_NODES",
    "SLUG_RE",
    "Claim",
    "CoreSchemaResolver",
    "Function",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "Requirement",
    "claim_of",
    "compose_manifest",
    "decode_manifest_text",
    "locate_offset",
    "parse_manifest",
    "split_lines",
    "validate_manifest_tree",
]
