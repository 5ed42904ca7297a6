"""A small typed client for runners: ask the hub for the environment of one app run.

Self-contained (only ``requests``): a runner may vendor this one file.

    client = HubClient("https://hub.example.com", token=os.environ["HUB_RUNNER_TOKEN"])
    try:
        run = client.run_environment(user="ada@example.com", app="google/sheets")
    except NotAuthorizedYetError as exc:
        tell_user(exc.missing, exc.actions)   # what to grant, and where
    else:
        subprocess.run(cmd, env={**base_env, **run.env})

The API is described by the hub's OpenAPI schema at ``/api/schema/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import requests


class HubError(Exception):
    """The hub refused or failed a request."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RunnerAuthenticationError(HubError):
    """The runner token is missing, wrong or revoked (401)."""


class NotFoundError(HubError):
    """No such user, app or version (404)."""


@dataclass(frozen=True)
class MissingItem:
    kind: str  # "capability" or "secret"
    key: str
    reason: str  # "not_granted", "needs_reconnect", "not_set", "not_allowed", "unknown", …
    provider: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Action:
    """What the user must do: e.g. Add Permissions for these capabilities at ``url``."""

    kind: str  # "add_permissions", "connect", "reconnect", "set_secret", "upload_key",
    # "authorize_app" (the user has these and must allow the app to use them, at ``url``)
    url: str
    provider: str | None = None
    capabilities: tuple[str, ...] = ()
    connection_id: int | None = None
    secrets: tuple[str, ...] = ()  # authorize_app: the secret keys to allow


class NotAuthorizedYetError(HubError):
    """The user has not granted (or must renew) something the app requires (409)."""

    def __init__(self, *, missing: list[MissingItem], actions: list[Action]) -> None:
        keys = ", ".join(m.key for m in missing)
        super().__init__(f"not authorized yet: {keys}", status=409)
        self.missing = missing
        self.actions = actions


@dataclass(frozen=True)
class RunEnvironment:
    """The env of one run. Its repr never shows the values."""

    env: Mapping[str, str] = field(repr=False)
    expires_at: datetime | None
    keys: tuple[str, ...]


class HubClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._session = session or requests.Session()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"HubClient({self.base_url!r})"

    def run_environment(
        self,
        *,
        user: str | int,
        app: str,
        version: int | None = None,
        connections: Mapping[str, int] | None = None,
    ) -> RunEnvironment:
        """The environment for ``user`` running ``app`` (``namespace/name``): exactly the
        keys its manifest declares, tokens valid for at least the hub's margin.

        ``connections`` names a connection per provider when the user's default one
        should not be used.
        """
        body: dict[str, Any] = {"user": str(user), "app": app}
        if version is not None:
            body["version"] = version
        if connections:
            body["connections"] = dict(connections)
        resp = self._session.post(
            f"{self.base_url}/api/v1/run-environments/",
            json=body,
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=self._timeout,
        )
        data = _json(resp)
        if resp.status_code == 200:
            expires = data.get("expires_at")
            return RunEnvironment(
                env=dict(data["env"]),
                expires_at=datetime.fromisoformat(expires) if expires else None,
                keys=tuple(data.get("keys") or data["env"].keys()),
            )
        if resp.status_code == 409:
            raise NotAuthorizedYetError(
                missing=[MissingItem(**_pick(m, MissingItem)) for m in data.get("missing", [])],
                actions=[
                    Action(
                        **{
                            **_pick(a, Action),
                            "capabilities": tuple(a.get("capabilities", ())),
                            "secrets": tuple(a.get("secrets", ())),
                        }
                    )
                    for a in data.get("actions", [])
                ],
            )
        message = str(data.get("detail") or data.get("error") or resp.reason)
        if resp.status_code == 401:
            raise RunnerAuthenticationError(message, status=401)
        if resp.status_code == 404:
            raise NotFoundError(message, status=404)
        raise HubError(message, status=resp.status_code)


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _pick(data: Mapping[str, Any], cls: Any) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
