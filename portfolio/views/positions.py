"""The positions page (open and closed, sortable, paginated) and one position's lifecycle timeline."""

from dataclasses import dataclass

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from portfolio.rules.expiries import is_past_expiry
from portfolio.selectors import (
    position_chart_get,
    position_counts_get,
    position_event_list,
    position_get,
    position_greeks_history,
    position_round_trip_get,
    position_sort_clean,
    position_table_list,
    positions_in_base,
    positions_mode_get,
)
from portfolio.views.common import AccountChoice, account_choice

PAGE_SIZE = 50

# (sort key or "" when the column does not sort, label, numeric) per tab, in display order.
OPEN_COLUMNS = [
    ("symbol", "Instrument", False),
    ("quantity", "Quantity", True),
    ("avg_price", "Avg price", True),
    ("price", "Price", True),
    ("", "Ccy", False),
    ("market_value", "Market value", True),
    ("unrealized_pnl", "Unrealized P&L", True),
    ("", "Unrealized (base)", True),
    ("unrealized_pct", "Unrealized %", True),
    ("opened", "Opened", False),
]
# Shown after the open tab's columns when the page holds an option: the position's Greeks (not sortable).
GREEKS_COLUMNS = [
    ("", "Delta (sh)", True),
    ("", "Gamma", True),
    ("", "Theta/day", True),
    ("", "Vega", True),
    ("", "IV", True),
    ("", "DTE", True),
]
OPTION_SEC_TYPES = {"OPT", "FOP"}
CLOSED_COLUMNS = [
    ("symbol", "Instrument", False),
    ("", "Size", True),
    ("avg_price", "Avg price", True),
    ("price", "Exit price", True),
    ("", "Ccy", False),
    ("realized_pnl", "Realized P&L", True),
    ("", "Realized (base)", True),
    ("opened", "Opened", False),
    ("closed", "Closed", False),
]


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool
    url: str  # "" when the column does not sort
    aria_sort: str  # "ascending", "descending" or "" (not the sorted column)


def _columns(status: str, sort: str, *, greeks: bool = False) -> list[Column]:
    """Header cells: a click sorts by the column, a second click reverses it."""
    columns = []
    specs = (OPEN_COLUMNS + (GREEKS_COLUMNS if greeks else [])) if status == "open" else CLOSED_COLUMNS
    for key, label, numeric in specs:
        current = sort.removeprefix("-") == key and bool(key)
        descending = sort.startswith("-")
        # Numbers and dates read best largest / newest first; names A to Z.
        first = key if key == "symbol" else f"-{key}"
        target = (key if descending else f"-{key}") if current else first
        columns.append(
            Column(
                label=label,
                numeric=numeric,
                url=f"?{urlencode({'status': status, 'sort': target})}" if key else "",
                aria_sort=("descending" if descending else "ascending") if current else "",
            )
        )
    return columns


@login_required
def positions(request: HttpRequest) -> HttpResponse:
    choice = account_choice(request)
    status = "closed" if request.GET.get("status") == "closed" else "open"
    sort = position_sort_clean(sort=request.GET.get("sort"), status=status)
    account_id = choice.selected.account_id if choice.selected else None
    rows = position_table_list(user=request.user, account_id=account_id, status=status, sort=sort)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    # Read once (the template goes through the same rows), with each row's figures in base: one query.
    page.object_list = positions_in_base(list(page.object_list))
    now = timezone.now()
    # Options past their expiry session's close the sync has not settled yet (the broker still lists
    # them over the weekend's processing, or no sync has run since): said on their row.
    awaiting = {p.pk for p in page.object_list if is_past_expiry(p, now=now)} if status == "open" else set()
    greeks = status == "open" and any(p.instrument.sec_type in OPTION_SEC_TYPES for p in page.object_list)
    return render(
        request,
        "portfolio/positions.html",
        {
            "choice": choice,
            "status": status,
            "sort": sort,
            "columns": _columns(status, sort, greeks=greeks),
            "greeks": greeks,
            "page": page,
            "counts": position_counts_get(user=request.user, account_id=account_id),
            "mode": positions_mode_get(account=choice.selected) if choice.selected else None,
            "page_query": urlencode({"status": status, "sort": sort}),
            "awaiting_settlement": awaiting,
        },
    )


@login_required
def position_detail(request: HttpRequest, pk: int) -> HttpResponse:
    choice = account_choice(request)
    position = position_get(user=request.user, pk=pk)
    if position is None:
        raise Http404("No such position, or not one of yours.")
    if request.GET.get("account") and choice.selected != position.account:
        # The account switcher on this page: show the positions of the account picked.
        return redirect(reverse("positions"))
    events = list(position_event_list(position=position))
    return render(
        request,
        "portfolio/position_detail.html",
        {
            # The header shows the position's own account, whichever one the session remembers.
            "choice": AccountChoice(accounts=choice.accounts, selected=position.account),
            "position": position,
            # A position first seen by a sync was opened by its opening fill, when that is known and earlier.
            "opened_at": min(
                position.opened_at,
                position.opening_execution.executed_at if position.opening_execution else position.opened_at,
            ),
            "events": events,
            "chart": position_chart_get(position=position, events=events),
            "round_trip": position_round_trip_get(position=position),
            "is_option": (is_option := position.instrument.sec_type in OPTION_SEC_TYPES),
            "greeks_history": position_greeks_history(position=position) if is_option else [],
            "fills": [
                (label, execution)
                for label, execution in (
                    ("Opening", position.opening_execution),
                    ("Closing", position.closing_execution),
                )
                if execution is not None
            ],
        },
    )
