"""The size and encoding limits of an upload, checked before any YAML is read. Pure."""

from __future__ import annotations

from typing import Final

from apps_registry.manifest.problems import ManifestError, ManifestProblem

MAX_MANIFEST_BYTES: Final = 64 * 1024
MAX_ALIASES: Final = 100
MAX_NODES: Final = 10_000
MAX_DEPTH: Final = 50
# Resource sizes end up in a bigint column.
MAX_RESOURCE_INT: Final = 2**63 - 1
_UTF8_BOM: Final = b"\xef\xbb\xbf"


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
