"""The schema of ``inf.yml`` (see the package docstring): a composed node tree is
validated once, with every problem located. Pure."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Final

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from apps_registry.manifest.limits import MAX_RESOURCE_INT, decode_manifest_text
from apps_registry.manifest.problems import (
    ManifestError,
    ManifestProblem,
    in_document_order,
    join_path,
    problem_at,
)
from apps_registry.manifest.safe_yaml import (
    BOOL_TAG,
    FLOAT_TAG,
    HAVE_LIBYAML,
    INT_TAG,
    NULL_TAG,
    STR_TAG,
    compose_manifest,
)
from integrations.core.catalogue import BUILTIN, Catalogue
from integrations.core.secret_rules import BUILTIN_ENV_NAMES, DISCORD_BOT_TOKEN_KEY

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
    catalogue: Catalogue = BUILTIN,
) -> Manifest:
    """Parse and validate an ``inf.yml``; raise :class:`ManifestError` if it is refused.

    ``text`` is the uploaded file, as bytes (must be UTF-8) or already decoded.
    Nothing but :class:`ManifestError` is raised for any ``str`` or ``bytes`` input;
    other argument types raise ``TypeError``. The reading rules and the schema are in
    this module's docstring. ``use_libyaml=False`` forces PyYAML's pure-Python parser
    (for tests and benchmarks; the result is the same). ``reserved_env_names``: the
    env names integrations hand out, refused as ``secrets:`` keys; the built-in ones
    by default (this module reads no database), the upload adds staff-defined ones.
    ``catalogue``: the capabilities an ``integrations:`` key may name without a
    warning; the built-in ones by default, the upload passes the one with the
    providers staff defined.
    """
    decoded = decode_manifest_text(text)
    root = compose_manifest(decoded, use_libyaml=use_libyaml)
    return validate_manifest_tree(root, reserved_env_names=reserved_env_names, catalogue=catalogue)


def validate_manifest_tree(
    root: Node | None,
    *,
    reserved_env_names: Collection[str] = BUILTIN_ENV_NAMES,
    catalogue: Catalogue = BUILTIN,
) -> Manifest:
    """Validate a tree composed by ``compose_manifest`` (an upload composes once, and
    reads both this and its ``claim_of`` from the same tree); the keywords are
    :func:`parse_manifest`'s."""
    return _Validator(reserved_env_names, catalogue).validate(root)


# --- validating ---------------------------------------------------------------------


def _describe(node: Node) -> str:
    """How a node reads in a message: "a list", "an integer", ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        STR_TAG: "a string",
        INT_TAG: "an integer",
        FLOAT_TAG: "a number",
        BOOL_TAG: "a boolean",
        NULL_TAG: "nothing (null)",
    }.get(node.tag, "a value")


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL_TAG


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")


class _Validator:
    """Walks the composed tree once, collecting errors and warnings with positions."""

    def __init__(
        self,
        reserved_env_names: Collection[str] = BUILTIN_ENV_NAMES,
        catalogue: Catalogue = BUILTIN,
    ) -> None:
        self.errors: list[ManifestProblem] = []
        self.warnings: list[ManifestProblem] = []
        self.reserved_env_names = reserved_env_names
        self.catalogue = catalogue

    def error(self, node: Node, path: str, message: str) -> None:
        self.errors.append(problem_at(node.start_mark, path, message))

    def warn(self, node: Node, path: str, message: str) -> None:
        self.warnings.append(problem_at(node.start_mark, path, message))

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
                path = join_path("", key)
                self.warn(key_node, path, _unknown_field_message(key, KNOWN_FIELDS, "kept"))
                extra[key] = self.construct(value_node, path)
            elif not _is_null(value_node):
                result = check(value_node, key)
                if result is not None:
                    values[key] = result

        self.check_default_function(fields, values)
        if self.errors:
            raise ManifestError(in_document_order(self.errors))
        return Manifest(**values, extra=extra, warnings=tuple(in_document_order(self.warnings)))

    # -- generic shapes --

    def mapping(self, node: MappingNode, path: str) -> dict[str, tuple[Node, Node]]:
        """The string-keyed entries of ``node``; bad and duplicate keys are errors."""
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.tag == STR_TAG):
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
                    join_path(path, key),
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
        if isinstance(node, ScalarNode) and node.tag == STR_TAG:
            return str(node.value)
        hint = " (quote it)" if isinstance(node, ScalarNode) and not _is_null(node) else ""
        self.error(node, path, f"must be a string, not {_describe(node)}{hint}")
        return None

    def boolean(self, node: Node, path: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == BOOL_TAG:
            return str(node.value).lower() == "true"
        self.error(node, path, f"must be true or false, not {_describe(node)}")
        return None

    def count(self, node: Node, path: str) -> int | None:
        """A non-negative integer that fits a bigint."""
        if not (isinstance(node, ScalarNode) and node.tag == INT_TAG):
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
        if isinstance(node, ScalarNode) and node.tag == STR_TAG and node.value == "":
            return None
        return self.slug(node, path)

    def construct(self, node: Node, path: str) -> Any:
        """The plain Python value of ``node`` (str, int, float, bool, None, list, dict)."""
        if isinstance(node, MappingNode):
            return {
                key: self.construct(value, join_path(path, key))
                for key, (_, value) in self.mapping(node, path).items()
            }
        if isinstance(node, SequenceNode):
            return [self.construct(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if isinstance(node, ScalarNode):
            return self.scalar(node, path)
        return None  # the composer makes no other kind of node

    def scalar(self, node: ScalarNode, path: str) -> Any:
        text = str(node.value)
        if node.tag == NULL_TAG:
            return None
        if node.tag == BOOL_TAG:
            return text.lower() == "true"
        if node.tag == INT_TAG:
            return self.integer(node, path)
        if node.tag == FLOAT_TAG:
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
            value = self.string(value_node, join_path(path, key))
            if value is not None:
                images[key] = value
        return images

    def env(self, node: Node, path: str) -> dict[str, str] | None:
        mapping = self.expect_mapping(node, path, "a mapping of variable names to strings")
        if mapping is None:
            return None
        env: dict[str, str] = {}
        for key, (key_node, value_node) in self.mapping(mapping, path).items():
            item_path = join_path(path, key)
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
            item_path = join_path(path, key)
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
            item_path = join_path(path, key)
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
                    self.warn(key_node, join_path(entry_path, name), message)
            key_path = join_path(entry_path, "key")
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
                description_path = join_path(entry_path, "description")
                description = self.string(fields["description"][1], description_path) or ""
            optional: bool | None = False
            if "optional" in fields:
                optional = self.boolean(fields["optional"][1], join_path(entry_path, "optional"))
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
        elif key not in self.catalogue.by_key:
            suggestion = self.catalogue.suggest(key)
            hint = f"; did you mean {suggestion!r}?" if suggestion else ""
            self.warn(node, path, f"unknown integration {_short(key)}{hint}")
        return key

    def credentials(self, node: Node, path: str) -> dict[str, Any] | None:
        mapping = self.expect_mapping(node, path, "a mapping with provider: and secrets:")
        if mapping is None:
            return None
        fields = self.mapping(mapping, path)
        if "provider" in fields and not _is_null(fields["provider"][1]):
            self.string(fields["provider"][1], join_path(path, "provider"))
        if "secrets" in fields and not _is_null(fields["secrets"][1]):
            self.expect_list(fields["secrets"][1], join_path(path, "secrets"), "a list")
        return {
            key: self.construct(value, join_path(path, key)) for key, (_, value) in fields.items()
        }

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
            name_path = join_path(entry_path, "name")
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
                description_path = join_path(entry_path, "description")
                description = self.string(fields["description"][1], description_path) or ""
            extra = {
                key: self.construct(value, join_path(entry_path, key))
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
