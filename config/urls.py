from allauth.account.decorators import secure_admin_login
from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from config.admin_mfa import register_authenticator_admin, unregister_unused_admin
from config.admin_users import register_user_admin
from integrations.views import operations

# The admin's sign-in is allauth's: its rate limits, and its two-factor step, apply
# (the admin's own form counts nothing). A signed-in staff member's request goes on to
# the admin as before; config/admin_mfa.py may still ask for two-factor first.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
# Staff see who has an authenticator, never its secret.
register_authenticator_admin(admin.site)
# Groups and permissions as checkboxes, not the admin's two-box filter (its help icons
# fail axe; config/admin_users.py).
register_user_admin(admin.site)
admin.site.site_header = "Integrations Hub admin"
admin.site.site_title = "Integrations Hub admin"
admin.site.index_title = "Integrations Hub admin"
# The changelists get the window's width (tests/browser/test_admin_widths.py); the
# index and the breadcrumbs lead to the other models.
admin.site.enable_nav_sidebar = False
# Nobody administers these here: the sandbox's OAuth toolkit rows are made by its own
# flows, and allauth's social apps and accounts are unused (providers are
# ProviderDefinition rows; connections are Connection rows).
unregister_unused_admin(admin.site)

urlpatterns = [
    # For load balancers, orchestrators and Prometheus (docs/deployment.md).
    path("healthz", operations.healthz, name="healthz"),
    path("readyz", operations.readyz, name="readyz"),
    path("metrics", operations.metrics_view, name="metrics"),
    path("", RedirectView.as_view(pattern_name="integrations:page"), name="home"),
    # Browsers ask for /favicon.ico whatever the page links; the icon is one SVG file
    # (its static URL, hashed in production, looked up when first asked for).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg")), name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("apps_registry.urls")),
    path("", include("integrations.urls")),
]

if settings.SANDBOX_ENABLED:
    urlpatterns += [path("sandbox/", include("integrations.sandbox.urls"))]

# JSON under /api/, Django's pages elsewhere.
handler400 = "apps_registry.api.errors.bad_request"
handler403 = "apps_registry.api.errors.permission_denied"
handler404 = "apps_registry.api.errors.not_found"
handler500 = "apps_registry.api.errors.server_error"
