"""What a secret may be. Pure: no models.

A secret reaches an app run as an environment variable, so its key is an env-style
name (POSIX "portable" names, upper case: ``FAL_KEY``) and its value a non-empty
string without NUL (which no environment can hold).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from integrations.core.catalogue import BUILTIN
from integrations.errors import InvalidSecretError

KEY_PATTERN = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_KEY_LENGTH = 128
MAX_VALUE_BYTES = 16 * 1024
# `discord.bot`: the user's own bot token, kept as this secret and handed to apps under
# the same name. Its form: three dot-separated base64url parts (user id, timestamp,
# HMAC), https://discord.com/developers/docs/reference#authentication.
DISCORD_BOT_TOKEN_KEY = "DISCORD_BOT_TOKEN"
DISCORD_BOT_TOKEN_PATTERN = re.compile(
    r"^[A-Za-z0-9_-]{18,40}\.[A-Za-z0-9_-]{5,10}\.[A-Za-z0-9_-]{25,60}$"
)

# Env names the built-in integrations hand to app runs (DESIGN.md "Env given to apps"):
# the OAuth providers' names and those of the other credential kinds. A secret may not
# take one (``check_secret_key``), a manifest may not declare one under ``secrets:``,
# and a run never takes one from a secret. Providers staff define add their ``env``
# names (``integrations.providers.registry.reserved_env_names``).
BUILTIN_ENV_NAMES: frozenset[str] = frozenset(
    {name for info in BUILTIN.providers.values() for name in info.env.values()}
    | {"GOOGLE_SA_CREDENTIALS", "GCP_ACCESS_TOKEN", "GCP_PROJECT_NUMBER", DISCORD_BOT_TOKEN_KEY}
)


def check_secret_key(key: str, *, reserved: Collection[str] = BUILTIN_ENV_NAMES) -> str:
    """The key, or ``InvalidSecretError``. Keys are not secret: messages may name them.

    A name in ``reserved`` (the env names integrations hand out) is refused, so that no
    secret can pose as an integration's token; ``DISCORD_BOT_TOKEN`` is the exception:
    it is how the user keeps their own bot token for ``discord.bot``.
    """
    if not key:
        raise InvalidSecretError("Give the secret a key, e.g. FAL_KEY.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidSecretError(f"A key is at most {MAX_KEY_LENGTH} characters.")
    if not KEY_PATTERN.match(key):
        raise InvalidSecretError(
            "A key is capital letters, digits and underscores, not starting with a digit "
            "(e.g. FAL_KEY)."
        )
    if key in reserved and key != DISCORD_BOT_TOKEN_KEY:
        raise InvalidSecretError(
            f"{key} is a name integrations hand to apps (connect the integration on "
            "Settings → Secrets → Integrations instead); give the secret another key."
        )
    return key


def check_secret_value(value: str, *, key: str = "") -> str:
    """The value, or ``InvalidSecretError`` (whose message never quotes it). Some keys
    have a known form (``DISCORD_BOT_TOKEN``)."""
    if not value or not value.strip():
        raise InvalidSecretError("The value is empty.")
    if "\x00" in value:
        raise InvalidSecretError("The value contains a NUL character.")
    if len(value.encode()) > MAX_VALUE_BYTES:
        raise InvalidSecretError(f"The value is longer than {MAX_VALUE_BYTES // 1024} KiB.")
    if key == DISCORD_BOT_TOKEN_KEY and not DISCORD_BOT_TOKEN_PATTERN.match(value.strip()):
        raise InvalidSecretError(
            "That is not a Discord bot token: copy it from the Bot page of your application "
            "in Discord's developer portal (three parts separated by dots)."
        )
    return value
