from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from integrations.connections.store import store_tokens
from integrations.core.catalogue import BUILTIN
from integrations.core.tokens import TokenSet
from integrations.models import Connection


class ConnectionFactory(factory.django.DjangoModelFactory[Connection]):
    """A stored connection with encrypted tokens, as the callback service leaves it."""

    class Meta:
        model = Connection
        skip_postgeneration_save = True

    provider = "google"
    account_uid = factory.Sequence(lambda n: f"sub-{n}")
    account_email = factory.Sequence(lambda n: f"user{n}@gmail.example")
    scopes = factory.LazyFunction(
        lambda: [
            "openid",
            "email",
            *BUILTIN.scopes_for(["google.sheets.readonly", "google.gmail.send"]),
        ]
    )
    access_token_encrypted = b""

    @factory.post_generation
    def tokens(obj: Connection, create: bool, extracted: object, **kwargs: object) -> None:
        n = obj.account_uid
        store_tokens(
            obj,
            TokenSet(
                access_token=f"ya29.factory-access-{n}",
                refresh_token=f"1//factory-refresh-{n}",
                expires_at=timezone.now() + timedelta(hours=1),
                scopes=None,
            ),
        )
        if create:
            obj.save()
