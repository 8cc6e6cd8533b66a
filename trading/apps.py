from django.apps import AppConfig


def _account_members(account) -> list[int]:
    """Who may see an account besides staff: its users (``Account.objects.visible_to``)."""
    return list(account.users.values_list("pk", flat=True))


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self) -> None:
        from core.alerts import alert_audience_register

        # Core delivers alerts about accounts; trading knows who belongs to one.
        alert_audience_register(_account_members)
