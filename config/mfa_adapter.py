"""The site's MFA adapter (allauth.mfa): allauth's, except that the TOTP secret and the
recovery codes' seed are encrypted at rest.

allauth keeps them in ``Authenticator.data`` through this adapter's ``encrypt`` and
``decrypt`` hooks and stores them in clear by default. Here they are encrypted as every
token and secret is (``INTEGRATIONS_TOKEN_KEYS``, authenticated, rotatable:
``manage.py rotate_token_keys`` re-encrypts them too), so a database dump does not
hand out staff's second factor.
"""

from __future__ import annotations

from allauth.mfa.adapter import DefaultMFAAdapter

from integrations import app_settings
from integrations.core import crypto


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        # A Fernet token is URL-safe base64: ASCII, so it fits allauth's JSON field.
        return crypto.encrypt(text, keys=app_settings.token_keys()).decode("ascii")

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text.encode("ascii"), keys=app_settings.token_keys())
