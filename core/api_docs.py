"""Who may read the API's schema (/api/schema/) and its docs (/api/docs/).

They describe every endpoint and parameter: logged-in users only, unless ``API_DOCS_PUBLIC`` opens
them to anyone. Decided at each request, so the setting needs no change of URLs.
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import BasePermission


class ApiDocsAccess(BasePermission):
    def has_permission(self, request, view) -> bool:
        return settings.API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


schema_view = SpectacularAPIView.as_view(permission_classes=[ApiDocsAccess])
_swagger_view = SpectacularSwaggerView.as_view(url_name="api-schema", permission_classes=[ApiDocsAccess])


def docs_view(request: HttpRequest) -> HttpResponse:
    """Swagger UI. It is a page: an anonymous visitor is sent to log in (and back), not shown a 403."""
    if not (settings.API_DOCS_PUBLIC or request.user.is_authenticated):
        return redirect_to_login(request.get_full_path())
    return _swagger_view(request)
