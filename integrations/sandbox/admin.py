"""Read-only admin for what the sandbox records. No token values exist to show."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import SandboxRevocation, SandboxTokenRequest


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SandboxTokenRequest)
class SandboxTokenRequestAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "grant_type", "client_id", "user", "outcome")
    list_filter = ("grant_type", "outcome")
    search_fields = ("client_id",)
    date_hierarchy = "created_at"


@admin.register(SandboxRevocation)
class SandboxRevocationAdmin(_ReadOnlyAdmin):
    list_display = ("created_at", "client_id", "user", "token_type_hint")
    list_filter = ("token_type_hint",)
    search_fields = ("client_id",)
    date_hierarchy = "created_at"
    # The checksum identifies a token without revealing it; still, keep it off lists.
    exclude = ("token_sha256",)
