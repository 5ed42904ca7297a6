"""Upload forms: a pasted text or a file, never both. Forms only parse input; the
upload itself is ``services.manifest_upload``."""

from __future__ import annotations

from typing import Any

from django import forms

from apps_registry.limits import MAX_MANIFEST_BYTES
from apps_registry.models import App

_BINARY = (
    "That file is not a text file (it looks like an image or other binary data). "
    "A manifest is a YAML text file, usually named inf.yml."
)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def looks_like_text(data: bytes) -> bool:
    """A manifest file is UTF-8 text: no NUL byte, no PNG signature, decodable."""
    if b"\x00" in data or data.startswith(_PNG_MAGIC):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_TOO_LARGE = f"The file is over {MAX_MANIFEST_BYTES:,} bytes (64 KiB), the limit for a manifest."


class ManifestUploadForm(forms.Form):
    """``cleaned_data["manifest"]``: the pasted text (str) or the file's bytes."""

    text = forms.CharField(
        label="inf.yml",
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 18, "spellcheck": "false", "autocapitalize": "off", "class": "code"}
        ),
        help_text="Paste the manifest here, or choose a file below.",
    )
    file = forms.FileField(label="or a file", required=False)

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        # The size is known from the upload itself: a large file is never read.
        if upload is not None and upload.size is not None and upload.size > MAX_MANIFEST_BYTES:
            raise forms.ValidationError(_TOO_LARGE)
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        text = cleaned.get("text") or ""
        upload = cleaned.get("file")
        if self.errors:
            return cleaned
        if upload is not None and text.strip():
            raise forms.ValidationError("Paste the manifest or choose a file, not both.")
        if upload is not None:
            data = upload.read(MAX_MANIFEST_BYTES + 1)
            if len(data) > MAX_MANIFEST_BYTES:
                raise forms.ValidationError(_TOO_LARGE)
            if not looks_like_text(data):
                raise forms.ValidationError(_BINARY)
            cleaned["manifest"] = data
        elif text:
            if "\x00" in text:
                raise forms.ValidationError(_BINARY)
            cleaned["manifest"] = text
        else:
            raise forms.ValidationError("Paste the manifest or choose a file.")
        return cleaned


class AdminManifestUploadForm(ManifestUploadForm):
    """The staff's upload: optionally into a chosen app (the manifest must name it)."""

    app = forms.ModelChoiceField(
        queryset=App.objects.order_by("namespace", "name"),
        required=False,
        help_text="Leave empty to file it under the app the manifest names.",
    )


class NamespaceOwnerForm(forms.Form):
    """A co-owner to add to a namespace, by the email of their account."""

    email = forms.EmailField(
        label="Co-owner's email",
        max_length=254,
        help_text="They must have an account here; they can then upload apps into this namespace.",
    )
