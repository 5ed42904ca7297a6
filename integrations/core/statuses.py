"""A connection's statuses (DESIGN.md, "connection"): the one set of values, which
``integrations.models.Connection.Status`` is built from. Pure: no models."""

from __future__ import annotations

ACTIVE = "active"
# The provider's last answer to a refresh was a transient failure: the grant still
# works, the current access token until it expires.
REFRESH_FAILING = "refresh_failing"
# The grant is dead (``invalid_grant``): only signing in again renews it.
NEEDS_RECONNECT = "needs_reconnect"
REVOKED = "revoked"

# Statuses whose grant still works: a run may use the connection.
USABLE = frozenset({ACTIVE, REFRESH_FAILING})
# Statuses whose grant has ended: no refresh is attempted any more.
DEAD = frozenset({NEEDS_RECONNECT, REVOKED})
