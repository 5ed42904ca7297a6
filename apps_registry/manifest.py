"""Parse and validate an app's ``inf.yml`` manifest.

Pure code: no Django, no database. :func:`parse_manifest` turns the uploaded text
into a frozen :class:`Manifest` or raises :class:`ManifestError` listing every
problem it found, each with a 1-based line and column and the path inside the
document (``integrations[2].optional``), so that an uploader can fix them all in
one go.

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
  is a warning with a "did you mean" suggestion. A key declared twice is an error.
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

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, NoReturn, Protocol

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from integrations import catalogue
from integrations.secret_rules import BUILTIN_ENV_NAMES, DISCORD_BOT_TOKEN_KEY

__all__ = [
    "ENV_NAME_RE",
    "HAVE_LIBYAML",
    "KNOWN_FIELDS",
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_NODES",
    "SLUG_RE",
    "CoreSchemaResolver",
    "Function",
    "Manifest",
    "ManifestError",
    "ManifestProblem",
    "Requirement",
    "compose_manifest",
    "decode_manifest_text",
    "locate_offset",
    "parse_manifest",
]

MAX_MANIFEST_BYTES: Final = 64 * 1024
MAX_ALIASES: Final = 100
MAX_NODES: Final = 10_000
MAX_DEPTH: Final = 50
# libyaml (bundled with PyYAML's wheels) parses about 8x faster than pure Python.
HAVE_LIBYAML: Final = yaml.__with_libyaml__
# Resource sizes end up in a bigint column.
MAX_RESOURCE_INT: Final = 2**63 - 1

# Dots for version numbers (``model-2.5-flash``); never two in a row, nor first or
# last, so that no slug reads as a path (``.``, ``..``, ``.hidden``) in a URL.
SLUG_RE: Final = re.compile(r"(?!.*\.\.)[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
ENV_NAME_RE: Final = re.compile(r"[A-Z_][A-Z0-9_]*")

KNOWN_FIELDS: Final = (
    "namespace",
    "name",
    "title",
    "description",
    "category",
    "kernel",
    "default_function",
    "metadata",
    "images",
    "env",
    "resources",
    "secrets",
    "integrations",
    "credentials",
    "functions",
)
_REQUIREMENT_FIELDS: Final = ("key", "description", "optional")
_RESOURCE_FIELDS: Final = ("gpu", "ram")
_GPU_FIELDS: Final = ("count", "vram", "type")

_STR: Final = "tag:yaml.org,2002:str"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
_BOOL: Final = "tag:yaml.org,2002:bool"
_NULL: Final = "tag:yaml.org,2002:null"
_UTF8_BOM: Final = b"\xef\xbb\xbf"


class _Position(Protocol):
    """A PyYAML mark (pure-Python or libyaml's): 0-based line and column."""

    line: int
    column: int


# --- results and errors -------------------------------------------------------------


@dataclass(frozen=True)
class ManifestProblem:
    """One error or warning: where it is and what is wrong.

    ``line`` and ``column`` are 1-based (columns count characters). ``path`` locates
    the value inside the document: ``secrets[0].key``, ``resources.gpu.count``; a key
    that is not a plain identifier is quoted (``metadata['a.b']``); ``""`` is the
    document itself (syntax errors, size and alias limits, tags).
    """

    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(Exception):
    """The manifest was refused; ``problems`` lists every error found, in document order.

    ``str()`` gives one ``LINE:COL: path: message`` line per problem.
    """

    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Requirement:
    """An entry of ``secrets`` or ``integrations``; ``optional=False`` means required."""

    key: str
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class Function:
    """An entry of ``functions``; fields other than name and description are in ``extra``."""

    name: str
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """A valid ``inf.yml``. ``warnings`` are problems that did not stop it.

    Frozen: fields cannot be reassigned. The dicts are built fresh by each parse and
    hold only plain data (str, int, float, bool, None, list, dict); treat them as
    read-only.
    """

    name: str
    namespace: str | None = None
    title: str | None = None
    description: str = ""
    category: str | None = None
    kernel: str | None = None
    default_function: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[Requirement, ...] = ()
    integrations: tuple[Requirement, ...] = ()
    credentials: dict[str, Any] = field(default_factory=dict)
    functions: tuple[Function, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[ManifestProblem, ...] = ()


# --- entry point --------------------------------------------------------------------


def parse_manifest(
    text: str | bytes,
    *,
    use_libyaml: bool = HAVE_LIBYAML,
    reserved_env_names: Collection[str] = BUILTIN_ENV_NAMES,
) -> Manifest:
    """Parse and validate an ``inf.yml``; raise :class:`ManifestError` if it is refused.

    ``text`` is the uploaded file, as bytes (must be UTF-8) or already decoded.
    Nothing but :class:`ManifestError` is raised for any ``str`` or ``bytes`` input;
    other argument types raise ``TypeError``. The reading rules and the schema are in
    this module's docstring. ``use_libyaml=False`` forces PyYAML's pure-Python parser
    (for tests and benchmarks; the result is the same). ``reserved_env_names``: the
    env names integrations hand out, refused as ``secrets:`` keys; the built-in ones
    by default (this module reads no database), the upload adds staff-defined ones.
    """
    decoded = decode_manifest_text(text)
    root = compose_manifest(decoded, use_libyaml=use_libyaml)
    return _Validator(reserved_env_names).validate(root)


def decode_manifest_text(text: str | bytes) -> str:
    """Return ``text`` as ``str`` after the size and encoding checks.

    Raises :class:`ManifestError` when it is over :data:`MAX_MANIFEST_BYTES` bytes
    of UTF-8 (checked before decoding), is not valid UTF-8, or contains lone
    surrogates.
    """
    if isinstance(text, bytes | bytearray):
        data = bytes(text)
        _refuse_if_too_large(len(data))
        if data.startswith(_UTF8_BOM):
            data = data[len(_UTF8_BOM) :]
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = data[: exc.start].decode("utf-8")
            line, column = locate_offset(before, len(before))
            raise ManifestError(
                [
                    ManifestProblem(
                        line,
                        column,
                        "",
                        f"the manifest is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                        "save it as UTF-8",
                    )
                ]
            ) from None
    if not isinstance(text, str):
        raise TypeError(f"parse_manifest() takes str or bytes, not {type(text).__name__}")
    # Every character is at least one byte: a long string is refused without encoding it.
    _refuse_if_too_large(len(text))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, column = locate_offset(text, exc.start)
        raise ManifestError(
            [ManifestProblem(line, column, "", "the manifest contains an invalid character")]
        ) from None
    _refuse_if_too_large(size)
    # Columns are counted as the YAML parsers count them: without a byte-order mark.
    return text.removeprefix("\ufeff")


def _refuse_if_too_large(size: int) -> None:
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [
                ManifestProblem(
                    1,
                    1,
                    "",
                    f"the manifest is too large: over {MAX_MANIFEST_BYTES:,} bytes (64 KiB)",
                )
            ]
        )


def locate_offset(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character ``offset`` in ``text``."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


# --- composing YAML safely ----------------------------------------------------------


class CoreSchemaResolver(BaseResolver):
    """YAML 1.2 core-schema resolution of plain scalars (no ``yes``/``on`` booleans,
    no sexagesimal integers, no timestamps, no merge keys).

    Also usable in a ``yaml.SafeDumper`` subclass, so that a tool writing manifests
    quotes exactly the strings this module would otherwise read as numbers, booleans
    or null (PyYAML's own dumper follows YAML 1.1 and writes ``1e5`` unquoted).
    """


CoreSchemaResolver.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)
CoreSchemaResolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z"), list("-+0123456789")
)
CoreSchemaResolver.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
    ),
    list("-+.0123456789"),
)
CoreSchemaResolver.add_implicit_resolver(
    _NULL, re.compile(r"^(?:~|null|Null|NULL|)\Z"), ["~", "n", "N", ""]
)


class _LimitedComposer(Composer):
    """PyYAML's composer, counting as it goes; mixed into a parser below.

    Aliases are charged the size of the node they point to, so the count is the size
    of the fully expanded document; composing stops as soon as it is over the limit,
    before anything is expanded. Explicit tags are collected in ``tag_problems``.
    """

    if TYPE_CHECKING:
        # Provided by the parser this is mixed into.
        def peek_event(self) -> Any: ...
        def dispose(self) -> None: ...

    def __init__(self) -> None:
        Composer.__init__(self)
        self.tag_problems: list[ManifestProblem] = []
        self._aliases = 0
        self._expanded = 0
        self._depth = 0
        # id(node) -> expanded size; a node not in here is still being composed.
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event: NodeEvent = self.peek_event()
        if isinstance(event, AliasEvent):
            self._charge_alias(event.anchor, event.start_mark)
            return super().compose_node(parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None:
            self.tag_problems.append(
                _problem_at(
                    event.start_mark,
                    "",
                    f"explicit YAML tags are not allowed (found {_show_tag(tag)}); "
                    "remove the tag, and quote the value if it must be a string",
                )
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            _refuse_at(event.start_mark, f"the document is nested more than {MAX_DEPTH} deep")
        before = self._expanded
        self._charge(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def _charge_alias(self, anchor: str | None, mark: _Position | None) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            _refuse_at(mark, f"too many aliases (*name): the limit is {MAX_ALIASES}")
        target = self.anchors.get(anchor)
        if target is None:
            return  # the composer reports the undefined alias itself
        size = self._sizes.get(id(target))
        if size is None:
            _refuse_at(mark, f"the alias *{anchor} refers to a node that contains it")
        self._charge(size, mark)

    def _charge(self, size: int, mark: _Position | None) -> None:
        self._expanded += size
        if self._expanded > MAX_NODES:
            _refuse_at(
                mark,
                f"the document is too large: more than {MAX_NODES:,} values, "
                "counting each alias as a full copy of what it refers to",
            )


class _PurePythonComposer(_LimitedComposer, Reader, Scanner, Parser, CoreSchemaResolver):
    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _LimitedComposer.__init__(self)
        CoreSchemaResolver.__init__(self)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    # libyaml scans and parses; the Python composer above (earlier in the MRO than
    # CParser's own) still builds the nodes, so the limits and tag checks apply.
    class _LibyamlComposer(_LimitedComposer, CParser, CoreSchemaResolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            _LimitedComposer.__init__(self)
            CoreSchemaResolver.__init__(self)


# The characters YAML allows (YAML 1.1, 5.1); PyYAML and libyaml both enforce this
# set, but libyaml reports a byte offset, so the check runs here, on characters.
_NOT_PRINTABLE: Final = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def compose_manifest(text: str, *, use_libyaml: bool = HAVE_LIBYAML) -> Node | None:
    """Compose ``text`` into a YAML node tree (``None`` for an empty document).

    Raises :class:`ManifestError` for characters YAML forbids, invalid YAML (at the
    position of the parser's error mark), explicit tags, documents over the alias,
    node-count or depth limits, and strings that cannot be stored (an escaped NUL or
    lone surrogate: ``_unstorable_strings``). ``use_libyaml`` picks libyaml's parser (about
    8x faster) over PyYAML's pure-Python one; the result is the same node tree.
    """
    bad = _NOT_PRINTABLE.search(text)
    if bad is not None:
        line, column = locate_offset(text, bad.start())
        raise ManifestError(
            [
                ManifestProblem(
                    line, column, "", f"character U+{ord(bad.group()):04X} is not allowed in YAML"
                )
            ]
        )
    loader: _LimitedComposer | None = None
    try:
        if use_libyaml and HAVE_LIBYAML:
            loader = _LibyamlComposer(text)
        else:
            loader = _PurePythonComposer(text)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        raise ManifestError([_problem_from_yaml_error(exc)]) from None
    except RecursionError:
        raise ManifestError(
            [ManifestProblem(1, 1, "", "the document is nested too deeply")]
        ) from None
    except (yaml.YAMLError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # The parser is third-party code fed hostile input: whatever else it raises
        # still means "not YAML we can read", never a server error.
        raise ManifestError(
            [ManifestProblem(1, 1, "", f"the manifest is not valid YAML ({type(exc).__name__})")]
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if loader.tag_problems:
        raise ManifestError(loader.tag_problems)
    # Only an escape (``"\0"``, ``"\ud800"``) can put one in a string: the raw text
    # itself was checked above, and the walk costs nothing for manifests without one.
    if root is not None and "\\" in text:
        problems = _unstorable_strings(root)
        if problems:
            raise ManifestError(problems)
    return root


# NUL: PostgreSQL text and JSONB refuse it. Surrogates: not characters, not UTF-8.
_UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")


def _unstorable_strings(root: Node) -> list[ManifestProblem]:
    """A problem per scalar (key or value, anywhere) holding a NUL or a lone surrogate,
    in document order; each aliased node is looked at once."""
    problems: list[ManifestProblem] = []
    seen: set[int] = set()

    def check(node: Node, path: str, what: str) -> None:
        found = _UNSTORABLE.search(str(node.value))
        if found is None:
            return
        point = ord(found.group())
        # The value is never quoted: it may be a secret pasted into env:.
        if point == 0:
            detail = "the NUL character (U+0000), which cannot be stored; remove the escape"
        else:
            detail = (
                f"U+{point:04X}, a lone surrogate (not a character); write the character "
                "itself, or a \\U escape of its code point"
            )
        problems.append(_problem_at(node.start_mark, path, f"{what} contains {detail}"))

    def walk(node: Node, path: str) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            check(node, path, "the string")
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{path}[{index}]")
        elif isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                if isinstance(key_node, ScalarNode):
                    check(key_node, path, "the key")
                else:
                    walk(key_node, path)
                walk(value_node, _join(path, key))

    walk(root, "")
    return _in_document_order(problems)


def _problem_from_yaml_error(exc: yaml.MarkedYAMLError) -> ManifestProblem:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + ", ".join(parts) if parts else "invalid YAML"
    return _problem_at(mark, "", message)


def _show_tag(tag: str) -> str:
    shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag
    return repr(shown[:60])


def _problem_at(mark: _Position | None, path: str, message: str) -> ManifestProblem:
    if mark is None:
        return ManifestProblem(1, 1, path, message)
    return ManifestProblem(mark.line + 1, mark.column + 1, path, message)


def _refuse_at(mark: _Position | None, message: str) -> NoReturn:
    raise ManifestError([_problem_at(mark, "", message)])


# --- validating ---------------------------------------------------------------------


_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _join(path: str, key: str) -> str:
    """``path.key``, or ``path['odd key']`` when the key would be ambiguous or span lines."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _describe(node: Node) -> str:
    """How a node reads in a message: "a list", "an integer", ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _INT: "an integer",
        _FLOAT: "a number",
        _BOOL: "a boolean",
        _NULL: "nothing (null)",
    }.get(node.tag, "a value")


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


class _Validator:
    """Walks the composed tree once, collecting errors and warnings with positions."""

    def __init__(self, reserved_env_names: Collection[str] = BUILTIN_ENV_NAMES) -> None:
        self.errors: list[ManifestProblem] = []
        self.warnings: list[ManifestProblem] = []
        self.reserved_env_names = reserved_env_names

    def error(self, node: Node, path: str, message: str) -> None:
        self.errors.append(_problem_at(node.start_mark, path, message))

    def warn(self, node: Node, path: str, message: str) -> None:
        self.warnings.append(_problem_at(node.start_mark, path, message))

    def validate(self, root: Node | None) -> Manifest:
        if root is None:
            raise ManifestError(
                [ManifestProblem(1, 1, "", "the manifest is empty; expected a mapping with name:")]
            )
        if not isinstance(root, MappingNode):
            self.error(
                root, "", f"the manifest must be a mapping (key: value), not {_describe(root)}"
            )
            raise ManifestError(self.errors)
        fields = self.mapping(root, "")
        values: dict[str, Any] = {}

        name_entry = fields.get("name")
        if name_entry is None:
            self.error(root, "name", "missing required field")
            values["name"] = ""
        elif _is_null(name_entry[1]):
            self.error(name_entry[1], "name", "must not be empty")
            values["name"] = ""
        else:
            values["name"] = self.slug(name_entry[1], "name") or ""

        checks = {
            "namespace": self.namespace,
            "title": self.string,
            "description": self.string,
            "category": self.string,
            "kernel": self.string,
            "default_function": self.string,
            "metadata": self.metadata,
            "images": self.images,
            "env": self.env,
            "resources": self.resources,
            "secrets": self.secrets,
            "integrations": self.integrations,
            "credentials": self.credentials,
            "functions": self.functions,
        }
        extra: dict[str, Any] = {}
        for key, (key_node, value_node) in fields.items():
            if key == "name":
                continue
            check = checks.get(key)
            if check is None:
                path = _join("", key)
                self.warn(key_node, path, _unknown_field_message(key, KNOWN_FIELDS, "kept"))
                extra[key] = self.construct(value_node, path)
            elif not _is_null(value_node):
                result = check(value_node, key)
                if result is not None:
                    values[key] = result

        self.check_default_function(fields, values)
        if self.errors:
            raise ManifestError(_in_document_order(self.errors))
        return Manifest(**values, extra=extra, warnings=tuple(_in_document_order(self.warnings)))

    # -- generic shapes --

    def mapping(self, node: MappingNode, path: str) -> dict[str, tuple[Node, Node]]:
        """The string-keyed entries of ``node``; bad and duplicate keys are errors."""
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR):
                self.error(key_node, path, f"keys must be strings, not {_describe(key_node)}")
                continue
            key = key_node.value
            # A plain scalar's style is None from PyYAML's parser and "" from libyaml's.
            if key == "<<" and not key_node.style:
                self.error(key_node, path, "merge keys (<<) are not supported")
                continue
            first = entries.get(key)
            if first is not None:
                self.error(
                    key_node,
                    _join(path, key),
                    f"duplicate key {_short(key)} (first defined on line "
                    f"{first[0].start_mark.line + 1})",
                )
                continue
            entries[key] = (key_node, value_node)
        return entries

    def expect_mapping(self, node: Node, path: str, what: str) -> MappingNode | None:
        if isinstance(node, MappingNode):
            return node
        self.error(node, path, f"must be {what}, not {_describe(node)}")
        return None

    def expect_list(self, node: Node, path: str, what: str) -> SequenceNode | None:
        if isinstance(node, SequenceNode):
            return node
        self.error(node, path, f"must be {what}, not {_describe(node)}")
        return None

    def string(self, node: Node, path: str) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _STR:
            return str(node.value)
        hint = " (quote it)" if isinstance(node, ScalarNode) and not _is_null(node) else ""
        self.error(node, path, f"must be a string, not {_describe(node)}{hint}")
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return str(node.value).lower() == "true"
        self.error(node, path, f"must be true or false, not {_describe(node)}")
        return None

    def count(self, node: Node, path: str) -> int | None:
        """A non-negative integer that fits a bigint."""
        if not (isinstance(node, ScalarNode) and node.tag == _INT):
            self.error(node, path, f"must be a whole number, not {_describe(node)}")
            return None
        value = self.integer(node, path)
        if value is None:
            return None
        if not 0 <= value <= MAX_RESOURCE_INT:
            self.error(node, path, f"must be between 0 and {MAX_RESOURCE_INT}")
            return None
        return value

    def integer(self, node: ScalarNode, path: str) -> int | None:
        text = str(node.value)
        try:
            if text.startswith("0o"):
                return int(text[2:], 8)
            if text.startswith("0x"):
                return int(text[2:], 16)
            return int(text, 10)
        except ValueError:
            # Python refuses to convert decimal strings of more than 4300 digits.
            self.error(node, path, "the number is too large")
            return None

    def slug(self, node: Node, path: str) -> str | None:
        value = self.string(node, path)
        if value is None:
            return None
        if not SLUG_RE.fullmatch(value):
            looks_like_path = (
                any(c in value for c in "/\\") or value.startswith(".") or ".." in value
            )
            hint = "; it must not look like a path" if looks_like_path else ""
            self.error(
                node,
                path,
                f"must be a slug: 1-64 lowercase letters, digits, '-', '_' or '.', starting "
                f"and ending with a letter or digit, without '..' (got {_short(value)}){hint}",
            )
            return None
        return value

    def namespace(self, node: Node, path: str) -> str | None:
        """A slug; ``""`` (as real apps publish it) is absent: the uploader's default."""
        if isinstance(node, ScalarNode) and node.tag == _STR and node.value == "":
            return None
        return self.slug(node, path)

    def construct(self, node: Node, path: str) -> Any:
        """The plain Python value of ``node`` (str, int, float, bool, None, list, dict)."""
        if isinstance(node, MappingNode):
            return {
                key: self.construct(value, _join(path, key))
                for key, (_, value) in self.mapping(node, path).items()
            }
        if isinstance(node, SequenceNode):
            return [self.construct(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        return None  # the composer makes no other kind of node

    def scalar(self, node: ScalarNode, path: str) -> Any:
        text = str(node.value)
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return text.lower() == "true"
        if node.tag == _INT:
            return self.integer(node, path)
        if node.tag == _FLOAT:
            lowered = text.lower()
            if lowered.endswith(".inf"):
                return float("-inf") if lowered.startswith("-") else float("inf")
            if lowered == ".nan":
                return float("nan")
            return float(text)
        return text

    # -- fields --

    def metadata(self, node: Node, path: str) -> dict[str, Any] | None:
        mapping = self.expect_mapping(node, path, "a mapping")
        return None if mapping is None else self.construct(mapping, path)

    def images(self, node: Node, path: str) -> dict[str, str] | None:
        mapping = self.expect_mapping(node, path, "a mapping of image names to URLs")
        if mapping is None:
            return None
        images: dict[str, str] = {}
        for key, (_, value_node) in self.mapping(mapping, path).items():
            value = self.string(value_node, _join(path, key))
            if value is not None:
                images[key] = value
        return images

    def env(self, node: Node, path: str) -> dict[str, str] | None:
        mapping = self.expect_mapping(node, path, "a mapping of variable names to strings")
        if mapping is None:
            return None
        env: dict[str, str] = {}
        for key, (key_node, value_node) in self.mapping(mapping, path).items():
            item_path = _join(path, key)
            if not ENV_NAME_RE.fullmatch(key):
                self.error(key_node, item_path, _env_name_message(key))
            # string() never quotes the value: an env value may be a pasted secret.
            value = self.string(value_node, item_path)
            if value is not None:
                env[key] = value
        return env

    def resources(self, node: Node, path: str) -> dict[str, Any] | None:
        mapping = self.expect_mapping(node, path, "a mapping with gpu: and ram:")
        if mapping is None:
            return None
        resources: dict[str, Any] = {}
        for key, (key_node, value_node) in self.mapping(mapping, path).items():
            item_path = _join(path, key)
            if key == "ram":
                resources[key] = self.count(value_node, item_path)
            elif key == "gpu":
                resources[key] = self.gpu(value_node, item_path)
            else:
                self.warn(
                    key_node, item_path, _unknown_field_message(key, _RESOURCE_FIELDS, "kept")
                )
                resources[key] = self.construct(value_node, item_path)
        return resources

    def gpu(self, node: Node, path: str) -> dict[str, Any] | None:
        mapping = self.expect_mapping(node, path, "a mapping with count:, vram: and type:")
        if mapping is None:
            return None
        gpu: dict[str, Any] = {}
        for key, (key_node, value_node) in self.mapping(mapping, path).items():
            item_path = _join(path, key)
            if key in ("count", "vram"):
                gpu[key] = self.count(value_node, item_path)
            elif key == "type":
                gpu[key] = self.string(value_node, item_path)
            else:
                self.warn(key_node, item_path, _unknown_field_message(key, _GPU_FIELDS, "kept"))
                gpu[key] = self.construct(value_node, item_path)
        return gpu

    def secrets(self, node: Node, path: str) -> tuple[Requirement, ...] | None:
        return self.requirements(node, path, "secret")

    def integrations(self, node: Node, path: str) -> tuple[Requirement, ...] | None:
        return self.requirements(node, path, "integration")

    def requirements(self, node: Node, path: str, kind: str) -> tuple[Requirement, ...] | None:
        entries = self.expect_list(node, path, "a list of entries with key:, description:")
        if entries is None:
            return None
        result: list[Requirement] = []
        first_seen: dict[str, tuple[int, Node]] = {}
        for index, entry in enumerate(entries.value):
            entry_path = f"{path}[{index}]"
            mapping = self.expect_mapping(
                entry, entry_path, "a mapping with key:, description: and optional:"
            )
            if mapping is None:
                continue
            fields = self.mapping(mapping, entry_path)
            for name, (key_node, _) in fields.items():
                if name not in _REQUIREMENT_FIELDS:
                    message = _unknown_field_message(name, _REQUIREMENT_FIELDS, "ignored")
                    self.warn(key_node, _join(entry_path, name), message)
            key_path = _join(entry_path, "key")
            key: str | None = None
            if "key" not in fields:
                self.error(mapping, key_path, "missing required field")
            else:
                key_node = fields["key"][1]
                key = self.requirement_key(key_node, key_path, kind)
                if key is not None:
                    seen = first_seen.get(key)
                    if seen is not None:
                        self.error(
                            key_node,
                            key_path,
                            f"{kind} {_short(key)} is declared twice (first as "
                            f"{path}[{seen[0]}] on line {seen[1].start_mark.line + 1})",
                        )
                        key = None
                    else:
                        first_seen[key] = (index, key_node)
            description = ""
            if "description" in fields and not _is_null(fields["description"][1]):
                description_path = _join(entry_path, "description")
                description = self.string(fields["description"][1], description_path) or ""
            optional: bool | None = False
            if "optional" in fields:
                optional = self.boolean(fields["optional"][1], _join(entry_path, "optional"))
            if key is not None and optional is not None:
                result.append(Requirement(key=key, description=description, optional=optional))
        return tuple(result)

    def requirement_key(self, node: Node, path: str, kind: str) -> str | None:
        if _is_null(node):
            self.error(node, path, "must not be empty")
            return None
        key = self.string(node, path)
        if key is None:
            return None
        if kind == "secret":
            if not ENV_NAME_RE.fullmatch(key):
                self.error(node, path, _env_name_message(key))
                return None
            if key in self.reserved_env_names:
                self.error(node, path, _reserved_secret_message(key))
                return None
        elif not key:
            self.error(node, path, "must not be empty")
            return None
        elif key not in catalogue.BY_KEY:
            suggestion = catalogue.suggest(key)
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            self.warn(node, path, f"unknown integration {_short(key)}{hint}")
        return key

    def credentials(self, node: Node, path: str) -> dict[str, Any] | None:
        mapping = self.expect_mapping(node, path, "a mapping with provider: and secrets:")
        if mapping is None:
            return None
        fields = self.mapping(mapping, path)
        if "provider" in fields and not _is_null(fields["provider"][1]):
            self.string(fields["provider"][1], _join(path, "provider"))
        if "secrets" in fields and not _is_null(fields["secrets"][1]):
            self.expect_list(fields["secrets"][1], _join(path, "secrets"), "a list")
        return {key: self.construct(value, _join(path, key)) for key, (_, value) in fields.items()}

    def functions(self, node: Node, path: str) -> tuple[Function, ...] | None:
        entries = self.expect_list(node, path, "a list of entries with name: and description:")
        if entries is None:
            return None
        result: list[Function] = []
        first_seen: dict[str, int] = {}
        for index, entry in enumerate(entries.value):
            entry_path = f"{path}[{index}]"
            mapping = self.expect_mapping(
                entry, entry_path, "a mapping with name: and description:"
            )
            if mapping is None:
                continue
            fields = self.mapping(mapping, entry_path)
            name_path = _join(entry_path, "name")
            name: str | None = None
            if "name" not in fields:
                self.error(mapping, name_path, "missing required field")
            else:
                name_node = fields["name"][1]
                name = None if _is_null(name_node) else self.string(name_node, name_path)
                if _is_null(name_node) or name == "":
                    self.error(name_node, name_path, "must not be empty")
                    name = None
                elif name is not None and name in first_seen:
                    self.error(
                        name_node,
                        name_path,
                        f"function {_short(name)} is declared twice (first as "
                        f"{path}[{first_seen[name]}])",
                    )
                    name = None
                elif name is not None:
                    first_seen[name] = index
            description = ""
            if "description" in fields and not _is_null(fields["description"][1]):
                description_path = _join(entry_path, "description")
                description = self.string(fields["description"][1], description_path) or ""
            extra = {
                key: self.construct(value, _join(entry_path, key))
                for key, (_, value) in fields.items()
                if key not in ("name", "description")
            }
            if name is not None:
                result.append(Function(name=name, description=description, extra=extra))
        return tuple(result)

    def check_default_function(
        self, fields: dict[str, tuple[Node, Node]], values: dict[str, Any]
    ) -> None:
        default = values.get("default_function")
        functions = values.get("functions")
        if default is None or not functions:
            return
        names = [f.name for f in functions]
        if default not in names:
            self.error(
                fields["default_function"][1],
                "default_function",
                f"{_short(default)} is not one of the declared functions ({', '.join(names)})",
            )


def _unknown_field_message(key: str, known: tuple[str, ...], fate: str) -> str:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {matches[0]!r}?" if matches else ""
    return f"unknown field {_short(key)} ({fate}){hint}"


def _reserved_secret_message(key: str) -> str:
    if key == DISCORD_BOT_TOKEN_KEY:
        how = "declare the integration discord.bot instead (it hands the user's bot token)"
    else:
        how = "declare the integration that provides it under integrations: instead"
    return f"{key} is handed out by an integration and cannot be a secret: {how}"


def _env_name_message(key: str) -> str:
    return (
        f"{_short(key)} is not an environment variable name: use uppercase letters, "
        "digits and '_', not starting with a digit"
    )


def _in_document_order(problems: list[ManifestProblem]) -> list[ManifestProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line, p.column))
