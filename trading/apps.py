from django.apps import AppConfig


def _paper_orders_after_quotes(instrument_ids: list[int]) -> None:
    """New quotes stored: the paper engine checks the resting orders of those instruments (in a worker).

    One indexed query decides whether there is anything to check, so quotes of instruments without a
    resting paper order queue no task.
    """
    from trading.models import AccountMode, Order, OrderStatus
    from trading.tasks import paper_orders_on_quotes_task

    resting = Order.objects.filter(
        mode=AccountMode.PAPER,
        status__in=(OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED),
        instrument_id__in=list(instrument_ids),
    )
    if resting.exists():
        paper_orders_on_quotes_task.delay(instrument_ids=list(instrument_ids))


def _account_members(account) -> list[int]:
    """Who may see an account besides staff: its users (``Account.objects.visible_to``)."""
    return list(account.users.values_list("pk", flat=True))


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self) -> None:
        from core.alerts import alert_audience_register
        from marketdata.hooks import after_quotes_register

        # Marketdata announces stored quotes through its hook; it never names trading.
        after_quotes_register(_paper_orders_after_quotes)
        # Core delivers alerts about accounts; trading knows who belongs to one.
        alert_audience_register(_account_members)
