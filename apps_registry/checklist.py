"""The app page's checklist: each need of an app (each capability, each secret, and
the user's Allow to use them), done or missing, with the one action that does it. Pure:
built from a :class:`~apps_registry.readiness.Readiness` and what is left to allow.

The count in the heading is what the buttons ask: a capability another asked one
covers is not counted again, so an app needing Gmail "send" and "read and organize"
needs "1 permission (covers 2)" and shows one Add Permissions button, on the row of the
capability it asks for; the covered row says what covers it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from apps_registry.readiness import Action, Item, Readiness, Reason, ToAllow
from integrations.core.catalogue import BUILTIN, Catalogue

__all__ = ["Checklist", "Step", "build_checklist", "covers_notes"]

# Reasons a capability is missing that no button of the page can fix.
_NO_ACTION = {
    Reason.NEEDS_CREDENTIAL: "credential",
    Reason.UNKNOWN: "unavailable",
    Reason.PROVIDER_UNAVAILABLE: "unavailable",
}


@dataclass(frozen=True)
class Step:
    """One line of the checklist.

    ``kind`` ``"integration"`` or ``"secret"``: ``item`` is the manifest's entry and its
    state. ``action``: the row's button, asking its provider for exactly
    ``action.capabilities`` (one key); ``covered_by`` the label of the asked capability
    that covers this one instead; ``notes`` what the asked one also covers.
    ``kind`` ``"allow"``: the user's Allow of what is there (``to_allow``).
    ``state``: ``"done"``, ``"missing"``, or ``"waiting"`` (an Allow with nothing to
    allow yet).
    """

    kind: Literal["integration", "secret", "allow"]
    state: Literal["done", "missing", "waiting"]
    optional: bool = False
    item: Item | None = None
    action: Action | None = None
    covered_by: str = ""
    notes: tuple[str, ...] = ()
    # Set, and not allowed yet: the Allow step lists it.
    not_allowed: bool = False
    to_allow: tuple[ToAllow, ...] = ()

    @property
    def done(self) -> bool:
        return self.state == "done"


@dataclass(frozen=True)
class Checklist:
    """The steps in manifest order (integrations, secrets), then the Allow step;
    ``together``: the provider-wide actions that ask for several capabilities in one
    consent, with their notes."""

    steps: tuple[Step, ...]
    together: tuple[tuple[Action, tuple[str, ...]], ...]
    # What the required buttons ask, and how many required needs that covers.
    permissions: int
    covers: int
    secrets: int
    # Required needs no button here can fix: a credential to bring, and an unknown key
    # or a provider this server cannot connect.
    credentials: int
    unavailable: int
    must_allow: bool
    ready: bool
    complete: bool

    @property
    def heading(self) -> str:
        """``Ready to run``, ``Not allowed yet``, ``Temporarily unavailable``, or ``Not
        ready: needs 1 permission (covers 2) and 1 secret``."""
        if self.complete and self.must_allow:
            return "Not allowed yet"
        if self.ready:
            return "Ready to run"
        if self.complete:
            return "Temporarily unavailable"
        return f"Not ready: needs {self.count_text}"

    @property
    def count_text(self) -> str:
        """What is left to do, counted as the buttons ask it."""
        parts: list[str] = []
        if self.permissions:
            covers = f" (covers {self.covers})" if self.covers > self.permissions else ""
            parts.append(_counted(self.permissions, "permission") + covers)
        if self.secrets:
            parts.append(_counted(self.secrets, "secret"))
        if self.credentials:
            parts.append(_counted(self.credentials, "credential") + " to bring")
        if self.unavailable:
            parts.append(_counted(self.unavailable, "item") + " that this server cannot provide")
        if self.must_allow:
            parts.append("your Allow")
        if len(parts) < 2:
            return "".join(parts) or "nothing"
        return ", ".join(parts[:-1]) + " and " + parts[-1]


def _counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def covers_notes(action: Action, missing: set[str], cat: Catalogue = BUILTIN) -> tuple[str, ...]:
    """One sentence per capability ``action`` asks that also covers other ``missing``
    ones it does not ask ("Gmail: read and organize also covers Gmail: send."), from the
    catalogue's ``covers`` data."""
    notes: list[str] = []
    asked = set(action.capabilities)
    for key in action.capabilities:
        capability = cat.by_key.get(key)
        covers = capability.covers if capability is not None else ()
        covered = [k for k in covers if k in missing and k not in asked]
        if covered:
            notes.append(
                f"{cat.label(key)} also covers {', '.join(cat.label(k) for k in covered)}."
            )
    return tuple(notes)


def build_checklist(
    readiness: Readiness,
    *,
    to_allow: Sequence[ToAllow] | None,
    cat: Catalogue = BUILTIN,
) -> Checklist:
    """The checklist of ``readiness``; ``to_allow`` is what the user has and has not
    allowed yet, ``None`` when authorization is declared (then there is no Allow step)."""
    missing = {i.key for i in readiness.items if not i.satisfied}
    not_allowed = {i.key for i in to_allow or ()}
    steps: list[Step] = []
    counted: set[str] = set()
    covers = credentials = unavailable = 0
    for item in readiness.items:
        if item.satisfied:
            steps.append(
                Step(
                    kind=item.kind,
                    state="done",
                    optional=item.optional,
                    item=item,
                    not_allowed=item.key in not_allowed,
                )
            )
            continue
        if item.kind == "secret":
            steps.append(Step(kind="secret", state="missing", optional=item.optional, item=item))
            continue
        action = _action_for(item, readiness.actions)
        asked = _asking(item, action, cat) if action is not None else None
        if not item.optional:
            if asked is not None:
                covers += 1
                counted.add(asked)
            elif item.reason in _NO_ACTION:
                credentials += _NO_ACTION[item.reason] == "credential"
                unavailable += _NO_ACTION[item.reason] == "unavailable"
        row = None
        if action is not None and asked == item.key:
            row = replace(
                action, capabilities=(asked,), labels=(cat.label(asked),), includes_optional=False
            )
        steps.append(
            Step(
                kind="integration",
                state="missing",
                optional=item.optional,
                item=item,
                action=row,
                covered_by=cat.label(asked) if asked is not None and asked != item.key else "",
                notes=covers_notes(row, missing, cat) if row is not None else (),
            )
        )
    allow = _allow_step(readiness, to_allow)
    if allow is not None:
        steps.append(allow)
    return Checklist(
        steps=tuple(steps),
        together=tuple(
            (a, covers_notes(a, missing, cat)) for a in readiness.actions if len(a.capabilities) > 1
        ),
        permissions=len(counted),
        covers=covers,
        secrets=len(readiness.secrets_missing),
        credentials=credentials,
        unavailable=unavailable,
        must_allow=any(not i.optional for i in to_allow or ()),
        ready=readiness.ready,
        complete=readiness.complete,
    )


def _action_for(item: Item, actions: Sequence[Action]) -> Action | None:
    """The provider's action that asks for ``item``: the required one for a required
    item, the one including optional ones for an optional item."""
    return next(
        (
            a
            for a in actions
            if a.provider == item.provider and a.includes_optional is item.optional
        ),
        None,
    )


def _asking(item: Item, action: Action, cat: Catalogue) -> str | None:
    """The key ``action`` asks that satisfies ``item`` (its own, or one covering it)."""
    if item.key in action.capabilities:
        return item.key
    return next((k for k in action.capabilities if cat.is_satisfied(item.key, (k,))), None)


def _allow_step(readiness: Readiness, to_allow: Sequence[ToAllow] | None) -> Step | None:
    if to_allow is None or not readiness.items:
        return None
    if to_allow:
        optional = all(i.optional for i in to_allow)
        return Step(kind="allow", state="missing", optional=optional, to_allow=tuple(to_allow))
    return Step(kind="allow", state="done" if readiness.satisfied else "waiting")
