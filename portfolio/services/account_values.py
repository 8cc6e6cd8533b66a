"""The broker's account values as the portfolio stores them (latest in AccountStatus, over time in
AccountSnapshot)."""

from core.brokers.base import AccountValues
from core.fields import quantize_money
from portfolio.models import ACCOUNT_VALUE_FIELDS


def account_value_fields(values: AccountValues) -> dict:
    """The broker's account values as AccountStatus and AccountSnapshot store them (money rounded)."""
    return {
        name: values.currency if name == "currency" else quantize_money(getattr(values, name))
        for name in ACCOUNT_VALUE_FIELDS
    }
