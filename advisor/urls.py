from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from advisor.health import healthz
from apps.planner.views import glossary

api_v1 = [
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.catalog.api_urls")),
    path("", include("apps.workloads.api_urls")),
    path("", include("apps.benchmarks.api_urls")),
    path("", include("apps.planner.api_urls")),
    path("", include("apps.manifests.api_urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="accounts:dashboard", permanent=False)),
    path("healthz/", healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page links; the icon is the static SVG.
    path("favicon.ico", RedirectView.as_view(url="/static/favicon.svg", permanent=True)),
    path("glossary/", glossary, name="glossary"),
    path("admin/", admin.site.urls),
    path("accounts/", include("apps.accounts.urls")),
    path("catalog/", include("apps.catalog.urls")),
    path("workloads/", include("apps.workloads.urls")),
    path("benchmarks/", include("apps.benchmarks.urls")),
    path("plans/", include("apps.planner.urls")),
    path("manifests/", include("apps.manifests.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]
