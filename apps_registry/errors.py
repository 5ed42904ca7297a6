"""Errors of the apps registry. Messages are shown to uploaders as they are: they name
apps and manifest positions, never a token or a secret value."""

from __future__ import annotations

from typing import Any

from apps_registry.manifest import ManifestError
from integrations.errors import IntegrationError


class AppOwnershipError(IntegrationError):
    """The app belongs to another user: only its owner (or staff) may change it (403,
    answered as DRF answers a permission denied: ``{"detail": message}``)."""

    status = 403
    code = "permission_denied"
    refused_as = None
    log_level = None

    def __init__(self, slug: str) -> None:
        self.slug = slug
        super().__init__(
            f"The app {slug} belongs to another user: only its owner can upload new versions. "
            "Pick another namespace or name."
        )

    def payload(self) -> dict[str, Any]:
        return {"detail": str(self)}


class ManifestRejectedError(ManifestError):
    """The upload was refused and not kept: it is over the size limit, not UTF-8, not
    YAML that names an app, or otherwise impossible to file under an app.

    ``problems`` say why, with line and column, as every ``ManifestError``'s do.
    """


class NamespaceOwnedError(IntegrationError):
    """The namespace belongs to other publishers: only its owners (and staff) upload
    apps into it (403 ``namespace_owned``). The message names the owners to ask."""

    status = 403
    code = "namespace_owned"
    refused_as = None
    log_level = None

    def __init__(self, namespace: str, *, owners: list[str]) -> None:
        self.namespace = namespace
        self.owners = owners
        super().__init__(
            f"The namespace {namespace} belongs to another publisher: only its owners can "
            f"upload apps into it. Ask {', '.join(owners)} to add you as a co-owner, or pick "
            "another namespace."
        )

    def payload(self) -> dict[str, Any]:
        return {"error": self.code, "detail": str(self), "namespace": self.namespace}


class NamespaceReservedError(IntegrationError):
    """The namespace is reserved: only the platform's staff upload into it or assign its
    owners (403 ``namespace_reserved``)."""

    status = 403
    code = "namespace_reserved"
    refused_as = None
    log_level = None

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(
            f"The namespace {namespace} is reserved: only the platform's staff can upload "
            "into it or make you an owner. Ask the platform's staff, or pick another namespace."
        )

    def payload(self) -> dict[str, Any]:
        return {"error": self.code, "detail": str(self), "namespace": self.namespace}


class NamespaceOwnerError(IntegrationError):
    """A change of a namespace's owners that cannot be made (no account has the email,
    the last owner would go); the message says what to do instead."""

    status = 400
    code = "namespace_owner_refused"
    refused_as = None
    log_level = None


class RunnerScopeError(IntegrationError):
    """The runner's scope does not name the app's namespace (403 ``runner_scope``). The
    detail names the namespace, never the token."""

    status = 403
    code = "runner_scope"
    refused_as = None
    log_level = None

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(
            f"This runner may not serve apps of the namespace {namespace}: ask staff to add "
            f"{namespace} to the runner's scope (admin → Runners)."
        )


class RunnerTokenError(IntegrationError):
    """A runner or runner token that cannot be made as asked (no scope given, a name
    taken, a third live token); the message says what to do instead."""

    status = 400
    code = "runner_token_refused"
    refused_as = None
    log_level = None


class PlatformCredentialError(IntegrationError):
    """A platform credential that cannot be made as asked (a name taken, no scope, an
    unknown scope, an expiry in the past); the message says what to do instead."""

    status = 400
    code = "platform_credential_refused"
    refused_as = None
    log_level = None


class ScopeMissingError(IntegrationError):
    """The platform credential lacks the scope this operation needs (403
    ``scope_missing``; ``scope`` names it)."""

    status = 403
    code = "scope_missing"
    refused_as = None
    log_level = None

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(
            f"This platform credential lacks the scope {scope}: ask staff for a credential "
            "that has it."
        )

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "scope": self.scope}


class UserRequiredError(IntegrationError):
    """A platform credential lists the connections of one user, named by ``?user=``."""

    status = 400
    code = "user_required"
    refused_as = None
    log_level = None

    def __init__(self) -> None:
        super().__init__("Name the user whose connections to list: ?user=<email or id>.")


class UserNotFoundError(IntegrationError):
    """No active user is named so (or, with a personal token, the user named is not the
    token's own); an email two accounts share names none: use the id."""

    status = 404
    code = "user_not_found"
    refused_as = None
    log_level = None

    def __init__(self) -> None:
        super().__init__("No such user (an email two accounts share names none: use the id).")


class ConnectionNotFoundError(IntegrationError):
    """No such connection, or not one this credential may see (the same answer, so that
    other users' connection ids are not disclosed)."""

    status = 404
    code = "not_found"
    refused_as = None
    log_level = None

    def __init__(self) -> None:
        super().__init__("No such connection.")


class StaffOnlyError(IntegrationError):
    """The operation is staff's (webhook endpoints): the token's user is not staff."""

    status = 403
    code = "staff_only"
    refused_as = None
    log_level = None
