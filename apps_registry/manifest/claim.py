"""Which app a manifest names, read from its composed tree even when it is not valid:
an upload that fails validation is still kept under its app. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from yaml.nodes import MappingNode, Node, ScalarNode

from apps_registry.manifest.safe_yaml import NULL_TAG, STR_TAG
from apps_registry.manifest.schema import SLUG_RE


@dataclass(frozen=True)
class Claim:
    """The app a manifest names, read from its YAML even when it is not valid."""

    namespace: str | None
    namespace_given: bool
    name: str | None
    line: int = 1
    column: int = 1


_ABSENT = ScalarNode(NULL_TAG, "")


def claim_of(root: Node | None) -> Claim:
    """``namespace`` and ``name`` of a composed document's root mapping, when they are
    slugs (``compose_manifest``'s tree; ``None``, or a tree that is no mapping, names
    nothing).

    Read for manifests that failed validation, so that the upload can still be kept
    under its app.
    """
    if not isinstance(root, MappingNode):
        return Claim(None, False, None)
    found: dict[str, ScalarNode | None] = {}
    for key_node, value_node in root.value:
        if not isinstance(key_node, ScalarNode) or key_node.value not in ("name", "namespace"):
            continue
        if key_node.value in found:
            continue  # a duplicate key: the first one counts, as in the error message
        found[key_node.value] = value_node if isinstance(value_node, ScalarNode) else None

    def slug(node: ScalarNode | None) -> str | None:
        if node is None or node.tag != STR_TAG:
            return None
        value = str(node.value)
        return value if SLUG_RE.fullmatch(value) else None

    name_node = found.get("name")
    namespace_node = found.get("namespace", _ABSENT)
    mark = name_node.start_mark if name_node is not None else root.start_mark
    return Claim(
        namespace=slug(namespace_node),
        # ``namespace:`` with nothing after it, or ``""``, counts as absent, as in the parser.
        namespace_given=namespace_node is not _ABSENT
        and not (
            namespace_node is not None
            and (
                namespace_node.tag == NULL_TAG
                or (namespace_node.tag == STR_TAG and namespace_node.value == "")
            )
        ),
        name=slug(name_node),
        line=mark.line + 1,
        column=mark.column + 1,
    )
