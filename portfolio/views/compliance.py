"""Placeholder until the dashboard work fills this page in."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def compliance(request: HttpRequest, **kwargs) -> HttpResponse:
    return HttpResponse(status=501)
