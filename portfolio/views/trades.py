"""Trades: the fills of the selected account (filtered, paginated, exportable as CSV) and its round trips."""

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render

from core.fields import quantize_money, quantize_price
from marketdata.fx import FxTable
from portfolio.views.common import account_choice
from trading.api.filters import ExecutionFilter
from trading.fx import executions_in_base, round_trips_in_base
from trading.models import Account
from trading.selectors import execution_list, round_trip_list_closed_between, with_decisions

PAGE_SIZE = 50
TABS = ("fills", "round-trips")
# Query parameters that belong to the page, not to the filter: the switcher's account is applied (or
# ignored, when it is not the user's) by account_choice, never by the FilterSet.
PAGE_PARAMS = ("account", "page", "tab")

CSV_COLUMNS = (
    "exec_id",
    "account",
    "symbol",
    "sec_type",
    "side",
    "quantity",
    "price",
    "commission",
    "executed_at",
    "trade_date",
    "settlement_date",
    "realized_pnl",
    "currency",
    "commission_currency",
    # The account's base currency and the fill's figures in it at the rate of its trade date (empty: no rate).
    "base_currency",
    "fx_rate",
    "price_base",
    "commission_base",
    "realized_pnl_base",
)
CSV_FIELDS = (
    "exec_id",
    "account__account_id",
    "instrument__symbol",
    "instrument__sec_type",
    "side",
    "quantity",
    "price",
    "commission",
    "executed_at",
    "trade_date",
    "settlement_date",
    "realized_pnl",
    "instrument__currency",
    "commission_currency",
)
CSV_CHUNK_ROWS = 2000
CSV_FLUSH_BYTES = 64 * 1024


def _execution_filter(request: HttpRequest, account: Account) -> ExecutionFilter:
    data = request.GET.copy()
    for key in PAGE_PARAMS:
        data.pop(key, None)
    queryset = execution_list(user=request.user).filter(account=account)
    return ExecutionFilter(data=data, queryset=queryset, request=request)


@login_required
def trades(request: HttpRequest) -> HttpResponse:
    """Fills (or round trips, on the second tab) of the selected account, newest first."""
    choice = account_choice(request)
    tab = request.GET.get("tab") if request.GET.get("tab") in TABS else TABS[0]
    context: dict = {"choice": choice, "tab": tab, "page": None, "page_range": []}
    account = choice.selected
    if account is None:
        return render(request, "portfolio/trades.html", context)

    filterset = _execution_filter(request, account)
    context["filter"] = filterset
    if filterset.is_valid():
        if tab == "fills":
            rows = with_decisions(filterset.qs)
        else:
            data = filterset.form.cleaned_data
            rows = round_trip_list_closed_between(
                user=request.user,
                account=account,
                symbol=data.get("symbol"),
                since=data.get("since"),
                until=data.get("until"),
            )
            rows = with_decisions(rows, perm_id="opening_execution__perm_id")
        page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
        # Each row's base-currency figures at its own day's rate: one query for the page's rates.
        in_base = executions_in_base if tab == "fills" else round_trips_in_base
        page.object_list = in_base(list(page.object_list))
        context["page"] = page
        context["page_range"] = list(page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1))
    return render(request, "portfolio/trades.html", context)


@login_required
def trades_csv(request: HttpRequest) -> HttpResponse:
    """The filtered fills of the selected account as CSV, oldest first, streamed in chunks so that a
    million fills never sit in memory at once. Decimals are written as they are stored."""
    choice = account_choice(request)
    account = choice.selected
    if account is None:
        return HttpResponseBadRequest("You have no accounts to export.", content_type="text/plain; charset=utf-8")
    filterset = _execution_filter(request, account)
    if not filterset.is_valid():
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in filterset.form.errors.items())
        return HttpResponseBadRequest(f"Invalid filter: {problems}", content_type="text/plain; charset=utf-8")
    fills = filterset.qs.order_by("executed_at", "id")
    currencies = set(fills.order_by().values_list("instrument__currency", "commission_currency").distinct())
    table = FxTable.load(base=account.base_currency, currencies={c for pair in currencies for c in pair})
    rows = _with_base(fills.values_list(*CSV_FIELDS).iterator(chunk_size=CSV_CHUNK_ROWS), table)
    response = StreamingHttpResponse(_csv_chunks(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="trades-{account.account_id}.csv"'
    return response


def _with_base(rows: Iterable[tuple], table: FxTable) -> Iterator[tuple]:
    """Each fill's row with the base currency, the rate of its trade date and its figures in base."""
    for row in rows:
        price, commission, trade_date, realized, currency, commission_currency = (
            row[6],
            row[7],
            row[9],
            row[11],
            row[12],
            row[13],
        )
        rate = table.rate(currency, trade_date)
        yield (
            *row,
            table.base,
            None if rate is None else rate.rate.normalize(),
            None if rate is None else quantize_price(price * rate.rate),
            quantize_money(table.convert(commission, commission_currency, trade_date).amount_base),
            quantize_money(table.convert(realized, currency, trade_date).amount_base),
        )


def _csv_chunks(rows: Iterable[tuple]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
        if buffer.tell() >= CSV_FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"  # never exponent form ("0E-8")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    # A text cell that starts like a formula would be run by a spreadsheet: keep it text.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text
