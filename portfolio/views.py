from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from trading.models import Account


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    accounts = Account.objects.visible_to(request.user).order_by("account_id")
    return render(request, "portfolio/overview.html", {"accounts": accounts})
