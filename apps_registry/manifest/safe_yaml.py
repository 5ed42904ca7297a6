"""Safe YAML: the core schema, no tags, bounded aliases, nodes and depth, no
unstorable strings; composed into a node tree once. Pure."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from apps_registry.manifest.limits import MAX_ALIASES, MAX_DEPTH, MAX_NODES, locate_offset
from apps_registry.manifest.problems import (
    ManifestError,
    ManifestProblem,
    Position,
    in_document_order,
    join_path,
    problem_at,
    refuse_at,
)
from apps_registry.manifest.yaml_words import problem_from_yaml_error

STR_TAG: Final = "tag:yaml.org,2002:str"
INT_TAG: Final = "tag:yaml.org,2002:int"
FLOAT_TAG: Final = "tag:yaml.org,2002:float"
BOOL_TAG: Final = "tag:yaml.org,2002:bool"
NULL_TAG: Final = "tag:yaml.org,2002:null"
# libyaml (bundled with PyYAML's wheels) parses about 8x faster than pure Python.
HAVE_LIBYAML: Final = yaml.__with_libyaml__


# --- composing YAML safely ----------------------------------------------------------


class CoreSchemaResolver(BaseResolver):
    """YAML 1.2 core-schema resolution of plain scalars (no ``yes``/``on`` booleans,
    no sexagesimal integers, no timestamps, no merge keys).

    Also usable in a ``yaml.SafeDumper`` subclass, so that a tool writing manifests
    quotes exactly the strings this module would otherwise read as numbers, booleans
    or null (PyYAML's own dumper follows YAML 1.1 and writes ``1e5`` unquoted).
    """


CoreSchemaResolver.add_implicit_resolver(
    BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)\Z"), list("tTfF")
)
CoreSchemaResolver.add_implicit_resolver(
    INT_TAG, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z"), list("-+0123456789")
)
CoreSchemaResolver.add_implicit_resolver(
    FLOAT_TAG,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z"
    ),
    list("-+.0123456789"),
)
CoreSchemaResolver.add_implicit_resolver(
    NULL_TAG, re.compile(r"^(?:~|null|Null|NULL|)\Z"), ["~", "n", "N", ""]
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
                problem_at(
                    event.start_mark,
                    "",
                    f"explicit YAML tags are not allowed (found {_show_tag(tag)}); "
                    "remove the tag, and quote the value if it must be a string",
                )
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            refuse_at(event.start_mark, f"the document is nested more than {MAX_DEPTH} deep")
        before = self._expanded
        self._charge(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        if node is not None:
            self._sizes[id(node)] = self._expanded - before
        return node

    def _charge_alias(self, anchor: str | None, mark: Position | None) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            refuse_at(mark, f"too many aliases (*name): the limit is {MAX_ALIASES}")
        target = self.anchors.get(anchor)
        if target is None:
            return  # the composer reports the undefined alias itself
        size = self._sizes.get(id(target))
        if size is None:
            refuse_at(mark, f"the alias *{anchor} refers to a node that contains it")
        self._charge(size, mark)

    def _charge(self, size: int, mark: Position | None) -> None:
        self._expanded += size
        if self._expanded > MAX_NODES:
            refuse_at(
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

    Raises :class:`ManifestError` for characters YAML forbids, invalid YAML (in plain
    words, at the line to fix: ``yaml_words``), explicit tags, documents over the alias,
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
        raise ManifestError([problem_from_yaml_error(exc, text)]) from None
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
        problems.append(problem_at(node.start_mark, path, f"{what} contains {detail}"))

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
                walk(value_node, join_path(path, key))

    walk(root, "")
    return in_document_order(problems)


def _show_tag(tag: str) -> str:
    shown = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag
    return repr(shown[:60])
