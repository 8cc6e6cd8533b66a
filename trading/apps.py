from django.apps import AppConfig


def _paper_orders_after_quotes(instrument_ids: list[int]) -> None:
    """New quotes stored: the paper engine checks the resting orders of those instruments (in a worker)."""
    from trading.tasks import paper_orders_on_quotes_task

    paper_orders_on_quotes_task.delay(instrument_ids=list(instrument_ids))


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self) -> None:
        from marketdata.hooks import after_quotes_register

        # Marketdata announces stored quotes through its hook; it never names trading.
        after_quotes_register(_paper_orders_after_quotes)
