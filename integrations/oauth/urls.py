# allauth includes `<provider package>.urls` under /accounts/. Integrations are never
# started by allauth's GET login view (our POST view starts them) and their callback
# lives under /integrations/oauth/<provider>/callback/ (integrations/urls.py).
urlpatterns: list = []
