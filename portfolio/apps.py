from django.apps import AppConfig


def _positions_after_fills(account_ids: list[str]) -> None:
    """New fills: the accounts' positions are built from them (after a sync, with POSITION_SYNC_ON_TRADE)."""
    from django.conf import settings

    from portfolio.tasks import positions_after_fills_task

    positions_after_fills_task.delay(account_ids=account_ids, sync=settings.POSITION_SYNC_ON_TRADE)


def _open_position_instruments() -> list[int]:
    """Every instrument with an open position: its daily bars and quote are kept (marketdata's hook)."""
    from portfolio.models import Position, PositionStatus

    return list(Position.objects.filter(status=PositionStatus.OPEN).values_list("instrument_id", flat=True).distinct())


def _fx_needs():
    from portfolio.selectors import fx_needs_get

    return fx_needs_get()


def _held_symbols(user) -> list[str]:
    from portfolio.selectors import held_symbols_get

    return held_symbols_get(user=user)


class PortfolioConfig(AppConfig):
    name = "portfolio"

    def ready(self) -> None:
        from marketdata.hooks import fx_needs_register, implicitly_watched_register
        from portfolio.selectors import account_risk_figures_get, round_trip_entry_greeks_get
        from sentiment.hooks import held_symbols_register
        from trading.hooks import account_figures_register, after_fills_register, round_trip_entry_greeks_register

        # Trading announces new fills through its hook; it never names portfolio.
        after_fills_register(_positions_after_fills)
        # Marketdata keeps daily bars and quotes of what is held, without naming portfolio.
        implicitly_watched_register(_open_position_instruments)
        # Marketdata backfills the daily rates of the currencies the ledger holds, without naming portfolio.
        fx_needs_register(_fx_needs)
        # Sentiment lists the held symbols first and asks its sources about them; it never names portfolio.
        held_symbols_register(_held_symbols)
        # Trading's order checks ask for the account's value (the broker's, as portfolio last read it).
        account_figures_register(account_risk_figures_get)
        # The trades API shows an option round trip's Greeks at entry, which portfolio keeps.
        round_trip_entry_greeks_register(round_trip_entry_greeks_get)
