"""What every page needs: the accounts the user may see and the one selected in the switcher."""

from dataclasses import dataclass

from django.http import HttpRequest

from trading.models import Account

SESSION_KEY = "selected_account"


@dataclass(frozen=True)
class AccountChoice:
    accounts: list[Account]
    selected: Account | None


def account_choice(request: HttpRequest) -> AccountChoice:
    """``?account=ID`` selects (and is remembered in the session); otherwise the remembered one, or the first.

    An id the user may not see is ignored, exactly as if it did not exist.
    """
    accounts = list(Account.objects.visible_to(request.user).order_by("account_id"))
    by_id = {a.account_id: a for a in accounts}
    wanted = request.GET.get("account") or request.session.get(SESSION_KEY)
    selected = by_id.get(wanted) if wanted else None
    if selected is None and accounts:
        selected = accounts[0]
    if selected is not None and request.session.get(SESSION_KEY) != selected.account_id:
        request.session[SESSION_KEY] = selected.account_id
    return AccountChoice(accounts=accounts, selected=selected)
