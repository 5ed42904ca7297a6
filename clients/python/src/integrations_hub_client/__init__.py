"""Clients for the integrations hub's API: ``HubClient`` (sync) and ``AsyncHubClient``
(asyncio), over httpx, with the same methods, results and errors.

    from integrations_hub_client import HubClient, NotAuthorizedYetError

    with HubClient("https://hub.example.com", token=os.environ["HUB_RUNNER_TOKEN"]) as hub:
        try:
            run = hub.run_environment(user="ada@example.com", app="google/sheets")
        except NotAuthorizedYetError as exc:
            tell_user(exc.missing, exc.actions)  # what to grant, and where
        else:
            subprocess.run(cmd, env={**base_env, **run.env})

The API is described by the hub's OpenAPI schema at ``/api/schema/``.
"""

from ._async import AsyncHubClient
from ._protocol import __version__
from ._sync import HubClient
from .errors import (
    AuthenticationError,
    HubConnectionError,
    HubError,
    HubTimeoutError,
    InvalidRequestError,
    NeedsReconnectError,
    NotAuthorizedYetError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from .models import (
    Account,
    Action,
    Connection,
    ConnectionUser,
    Disconnection,
    MissingItem,
    Outage,
    Refresh,
    RunEnvironment,
)

__all__ = [
    "Account",
    "Action",
    "AsyncHubClient",
    "AuthenticationError",
    "Connection",
    "ConnectionUser",
    "Disconnection",
    "HubClient",
    "HubConnectionError",
    "HubError",
    "HubTimeoutError",
    "InvalidRequestError",
    "MissingItem",
    "NeedsReconnectError",
    "NotAuthorizedYetError",
    "NotFoundError",
    "Outage",
    "PermissionDeniedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "Refresh",
    "RunEnvironment",
    "__version__",
]
