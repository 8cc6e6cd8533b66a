"""Placeholder until the dashboard work fills this page in."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def sync_health(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=501)
