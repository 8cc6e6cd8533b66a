from django.apps import AppConfig


def _positions_after_fills(account_ids: list[str]) -> None:
    """New fills: the accounts' positions are built from them (after a sync, with POSITION_SYNC_ON_TRADE)."""
    from django.conf import settings

    from portfolio.tasks import positions_after_fills_task

    positions_after_fills_task.delay(account_ids=account_ids, sync=settings.POSITION_SYNC_ON_TRADE)


def _held_symbols(user) -> list[str]:
    from portfolio.selectors import held_symbols_get

    return held_symbols_get(user=user)


class PortfolioConfig(AppConfig):
    name = "portfolio"

    def ready(self) -> None:
        from portfolio.selectors import account_risk_figures_get
        from sentiment.hooks import held_symbols_register
        from trading.hooks import account_figures_register, after_fills_register

        # Trading announces new fills through its hook; it never names portfolio.
        after_fills_register(_positions_after_fills)
        # Sentiment lists the held symbols first and asks its sources about them; it never names portfolio.
        held_symbols_register(_held_symbols)
        # Trading's order checks ask for the account's value (the broker's, as portfolio last read it).
        account_figures_register(account_risk_figures_get)
