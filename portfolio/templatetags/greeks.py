"""Option Greeks on the pages: a position's own Greeks (per share x multiplier x signed quantity)."""

from django import template

from portfolio.rules.greeks import PositionGreekValues
from portfolio.selectors import position_greek_values_get

register = template.Library()


@register.filter
def position_greek_values(position) -> PositionGreekValues | None:
    """``{% with g=p|position_greek_values %}``: the position's delta in shares, dollar delta, gamma,
    theta and vega in money; None for a position without known Greeks (a stock, or empty Greeks)."""
    # the Greeks are joined by the selector
    return position_greek_values_get(greeks=getattr(position, "greeks", None), position=position)
