"""The consent form: DOT's hidden fields, with the scopes as checkboxes."""

from __future__ import annotations

from typing import Any

from django import forms
from oauth2_provider.forms import AllowForm

from .scopes import IDENTITY_SCOPES, describe_scope


class ConsentForm(AllowForm):
    """Every requested scope ticked by default; the user may untick any but the
    identity scopes, which are always granted.

    ``cleaned_data["scope"]`` is the space-separated granted scopes, as DOT's
    ``AuthorizationView.form_valid`` expects.
    """

    scope = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    # What the client asked for; the checkboxes may only narrow it.
    requested_scope = forms.CharField(widget=forms.HiddenInput())
    # Google's request options, carried to the grant.
    access_type = forms.CharField(required=False, widget=forms.HiddenInput())
    include_granted_scopes = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            requested = str(self.data.get(self.add_prefix("requested_scope"), ""))
        else:
            requested = str(self.initial.get("requested_scope", ""))
        self.requested_scopes = requested.split()
        choosable = [s for s in self.requested_scopes if s not in IDENTITY_SCOPES]
        self.fields["scope"].choices = [(s, describe_scope(s).label) for s in choosable]
        self.fields["scope"].initial = choosable

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        ticked = set(cleaned.get("scope") or [])
        cleaned["scope"] = " ".join(
            s for s in self.requested_scopes if s in IDENTITY_SCOPES or s in ticked
        )
        return cleaned
