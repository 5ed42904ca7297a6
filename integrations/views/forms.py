from __future__ import annotations

from collections.abc import Iterable

from django import forms
from django.http import QueryDict

from integrations.app_authorization import check_app_slug
from integrations.core import time_zones
from integrations.core.catalogue import Capability
from integrations.core.secret_rules import check_secret_key, check_secret_value
from integrations.core.service_account_keys import MAX_KEY_BYTES, parse_project_number
from integrations.errors import (
    InvalidAppSlugError,
    InvalidSecretError,
    InvalidServiceAccountKeyError,
)
from integrations.providers import registry

PICK_PREFIX = "pick-"


def capabilities_data(data: QueryDict) -> QueryDict:
    """``data`` with the permission picker's choices (one ``pick-<row>`` radio per
    product; empty for None) added to ``capabilities``, the field the app page and the
    Add Permissions links post (repeated)."""
    merged = data.copy()
    picked = [
        value
        for name in data
        if name.startswith(PICK_PREFIX)
        for value in data.getlist(name)
        if value
    ]
    merged.setlist("capabilities", [*data.getlist("capabilities"), *picked])
    return merged


class CapabilitiesForm(forms.Form):
    """Which capabilities to ask for; the choices are the ones this action may offer."""

    capabilities = forms.MultipleChoiceField(
        choices=(),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one permission."},
    )
    next = forms.CharField(required=False, widget=forms.HiddenInput)
    # Started from an app's page: that app (``namespace/name``) and its version are
    # allowed what is asked and granted, on return (per-app authorization). Only the
    # user's own intent: its shape is checked, nothing else is read from it.
    app = forms.CharField(required=False, max_length=201, widget=forms.HiddenInput)
    app_version = forms.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput
    )

    def clean_app(self) -> str:
        app = self.cleaned_data.get("app") or ""
        if not app:
            return ""
        try:
            return check_app_slug(app)
        except InvalidAppSlugError:
            raise forms.ValidationError("This is not an app's name.") from None

    def __init__(self, *args: object, offered: Iterable[Capability], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["capabilities"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(c.key, c.label) for c in offered]


class OwnClientForm(forms.Form):
    """Your-own mode. The secret is write-only: never rendered back."""

    client_id = forms.CharField(max_length=255, strip=True)
    client_secret = forms.CharField(
        max_length=512, strip=True, widget=forms.PasswordInput(render_value=False)
    )


# --- Settings → Secrets: secrets and service-account keys -----------------------------
# Write-only values: the inputs are rendered by hand in the templates, never with a
# value, so that a form shown again after an error does not carry what was typed.


class SecretForm(forms.Form):
    """Add or replace a secret. The rules are ``secret_rules``'; the service checks
    them again."""

    key = forms.CharField(
        error_messages={"required": "Give the secret a key, e.g. FAL_KEY."},
    )
    value = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        error_messages={"required": "The value is empty."},
    )

    def clean_key(self) -> str:
        try:
            return check_secret_key(
                self.cleaned_data["key"], reserved=registry.reserved_env_names()
            )
        except InvalidSecretError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_value(self) -> str:
        try:
            return check_secret_value(
                self.cleaned_data["value"], key=self.cleaned_data.get("key", "")
            )
        except InvalidSecretError as exc:
            raise forms.ValidationError(str(exc)) from None


class ServiceAccountKeyForm(forms.Form):
    """A key file, uploaded or pasted (one of the two). ``clean`` leaves its bytes in
    ``cleaned_data["key_text"]``; the service checks the content."""

    key_file = forms.FileField(required=False)
    key_json = forms.CharField(required=False, strip=False, widget=forms.Textarea)

    def clean(self) -> dict:
        cleaned = super().clean() or {}
        upload = cleaned.get("key_file")
        pasted = cleaned.get("key_json") or ""
        if upload and pasted.strip():
            raise forms.ValidationError("Upload the key file or paste its JSON, not both.")
        if upload:
            if upload.size is not None and upload.size > MAX_KEY_BYTES:
                raise forms.ValidationError(
                    f"The key file is larger than {MAX_KEY_BYTES // 1024} KiB; "
                    "a Google service-account key file is about 2.3 KiB."
                )
            cleaned["key_text"] = upload.read(MAX_KEY_BYTES + 1)
        elif pasted.strip():
            cleaned["key_text"] = pasted
        else:
            raise forms.ValidationError("Upload the key file or paste its JSON.")
        return cleaned


class GcpProjectForm(ServiceAccountKeyForm):
    """A GCP project: its number and a service-account key of it."""

    project_number = forms.CharField(
        max_length=32,
        error_messages={"required": "Give the project number (digits, e.g. 123456789012)."},
    )

    def clean_project_number(self) -> str:
        try:
            return parse_project_number(self.cleaned_data["project_number"])
        except InvalidServiceAccountKeyError as exc:
            raise forms.ValidationError(str(exc)) from None


class TimeZoneForm(forms.Form):
    """The time zone pages use, one of the tz database's names."""

    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=lambda: [(name, name) for name in time_zones.time_zone_names()],
    )
