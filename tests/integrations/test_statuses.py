"""The one set of connection statuses and the model's choices agree."""

from integrations.core import statuses
from integrations.core.refresh_policy import DEAD_STATUSES
from integrations.models import Connection


def test_the_model_choices_are_the_core_statuses():
    assert set(Connection.Status.values) == {
        statuses.ACTIVE,
        statuses.REFRESH_FAILING,
        statuses.NEEDS_RECONNECT,
        statuses.REVOKED,
    }
    assert Connection.Status.ACTIVE == statuses.ACTIVE
    assert Connection.Status.REFRESH_FAILING == statuses.REFRESH_FAILING
    assert Connection.Status.NEEDS_RECONNECT == statuses.NEEDS_RECONNECT
    assert Connection.Status.REVOKED == statuses.REVOKED


def test_every_status_is_usable_or_dead_never_both():
    assert set(Connection.Status.values) == statuses.USABLE | statuses.DEAD
    assert not statuses.USABLE & statuses.DEAD
    assert {"active", "refresh_failing"} == statuses.USABLE
    assert {"needs_reconnect", "revoked"} == statuses.DEAD


def test_the_refresh_policy_uses_the_dead_statuses():
    assert set(DEAD_STATUSES) == statuses.DEAD
