"""allauth's provider registry imports ``<app>.provider`` for every installed app: this
registers the one allauth provider class behind every integration.

Each configured provider (``google``, later any registered one) is an allauth
*sub-provider* of ``integration``, with its own ``provider_id`` and callback path, in
the same way allauth's OpenID Connect provider works.
"""

from integrations.oauth.provider import IntegrationProvider

provider_classes = [IntegrationProvider]
