"""Services for providers defined as data, and users' own OAuth clients."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from integrations import app_settings
from integrations.core import crypto
from integrations.core.provider_definitions import PRESETS, DefinitionError, validate_definition
from integrations.models import ProviderDefinition
from integrations.providers import client as http
from integrations.providers import registry

# Fields that change what the check verified: editing one asks for a new check.
if TYPE_CHECKING:
    pass


CHECKED_FIELDS = (
    "discovery_url",
    "authorize_url",
    "token_url",
    "revocation_url",
    "userinfo_url",
    "client_auth",
    "pkce",
)


def provider_definition_from_preset(*, preset: str) -> dict[str, Any]:
    """The initial field values of a new definition from a preset (``KeyError`` if none)."""
    data = dict(PRESETS[preset])
    for name in ("capabilities", "identity_scopes"):
        data[name] = json.loads(json.dumps(data.get(name, [])))
    return data


def provider_definition_set_secret(*, definition: ProviderDefinition, secret: str) -> None:
    """Store the platform's client secret (managed mode), encrypted."""
    definition.client_secret_encrypted = crypto.encrypt(secret, keys=app_settings.token_keys())
    definition.save(update_fields=["client_secret_encrypted", "updated_at"])


@dataclass
class CheckReport:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def fail(self, line: str) -> None:
        self.ok = False
        self.lines.append("✗ " + line)

    def good(self, line: str) -> None:
        self.lines.append("✓ " + line)


def _reach(report: CheckReport, name: str, method: str, url: str) -> None:
    answer = http.reach(method, app_settings.absolute(url))
    if answer.refused:
        report.fail(f"{name} {url}: refused: {answer.refused}")
    elif answer.status is None:
        report.fail(f"{name} {url}: unreachable ({answer.error})")
    elif answer.status >= 500:
        report.fail(f"{name} {url}: answered {answer.status}")
    else:
        # Without credentials a 400 or 401 is the expected answer: the server is there.
        report.good(f"{name} {url}: answered {answer.status}")


def provider_definition_check(*, definition: ProviderDefinition) -> CheckReport:
    """Fetch the OIDC discovery document (filling empty endpoints from it), validate the
    definition, and reach each endpoint. The result is stored on the definition; a
    definition can be enabled only after a successful check."""
    report = CheckReport()
    if definition.discovery_url:
        discovery = http.fetch_discovery(app_settings.absolute(definition.discovery_url))
        meta = discovery.body
        if discovery.refused:
            report.fail(f"discovery {definition.discovery_url}: refused: {discovery.refused}")
            meta = {}
        elif discovery.error:
            report.fail(f"discovery {definition.discovery_url}: {discovery.error}")
            meta = {}
        if meta:
            report.good(f"discovery: issuer {meta.get('issuer', '?')}")
            for attr, key in (
                ("authorize_url", "authorization_endpoint"),
                ("token_url", "token_endpoint"),
                ("revocation_url", "revocation_endpoint"),
                ("userinfo_url", "userinfo_endpoint"),
            ):
                if not getattr(definition, attr) and meta.get(key):
                    setattr(definition, attr, meta[key])
                    report.good(f"{attr} from discovery: {meta[key]}")
            if definition.pkce and "S256" not in meta.get("code_challenge_methods_supported", []):
                report.fail("the server does not announce PKCE S256")
            methods = meta.get("token_endpoint_auth_methods_supported") or []
            wanted = f"client_secret_{definition.client_auth}"
            if methods and wanted not in methods:
                report.fail(f"the token endpoint does not accept {wanted} ({', '.join(methods)})")
    try:
        validate_definition(
            {f.name: getattr(definition, f.name) for f in ProviderDefinition._meta.fields}
        )
        report.good("definition is complete")
    except DefinitionError as exc:
        report.fail(str(exc))
    if definition.authorize_url:
        _reach(report, "authorize", "GET", definition.authorize_url)
    if definition.token_url:
        _reach(report, "token", "POST", definition.token_url)
    if definition.revocation_url:
        _reach(report, "revocation", "POST", definition.revocation_url)
    else:
        report.lines.append("· no revocation endpoint: Disconnect deletes locally only")
    if definition.userinfo_url:
        _reach(report, "userinfo", "GET", definition.userinfo_url)
    else:
        report.lines.append(
            f"· no userinfo endpoint: the account is read from the token response "
            f"({definition.uid_field})"
        )
    if not definition.client_id and not definition.allow_user_clients:
        report.fail("no client: set the platform's client, or let users bring their own")
    definition.last_checked_at = timezone.now()
    definition.last_check_ok = report.ok
    definition.last_check_report = "\n".join(report.lines)
    if not report.ok:
        definition.enabled = False
    definition.save()
    registry.definitions_changed()
    return report
