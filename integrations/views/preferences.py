"""Settings → Preferences: the time zone pages show times in (``UserPreferences``).

Without JavaScript the user picks it here (UTC until then); with it, the browser's zone
is posted once (static/js/time-zone.js → ``time_zone_detect``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from integrations import selectors
from integrations.core import time_zones
from integrations.preferences import preferences_time_zone_set
from integrations.time_zone import remember
from integrations.types import AuthenticatedHttpRequest
from integrations.views.forms import TimeZoneForm


@login_required
@require_http_methods(["GET", "POST"])
def preferences_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = TimeZoneForm(request.POST)
        if form.is_valid():
            zone = preferences_time_zone_set(
                user=request.user, time_zone=form.cleaned_data["time_zone"]
            )
            remember(request, zone)
            messages.success(request, f"Times are now shown in {zone}.")
            return redirect("integrations:preferences")
        status = 400
    else:
        chosen = selectors.time_zone_for_user(user=request.user)
        form = TimeZoneForm(initial={"time_zone": chosen or time_zones.DEFAULT})
        status = 200
    return render(
        request,
        "integrations/preferences.html",
        {"settings_tab": "preferences", "form": form},
        status=status,
    )


@login_required
@require_POST
def time_zone_detect(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The browser's zone (``Intl``), stored only while the user has chosen none: 204,
    or 400 for a name the tz database does not know."""
    try:
        zone = preferences_time_zone_set(
            user=request.user,
            time_zone=request.POST.get("time_zone", ""),
            only_if_unset=True,
        )
    except ValidationError:
        return HttpResponse(status=400)
    remember(request, zone)
    return HttpResponse(status=204)
