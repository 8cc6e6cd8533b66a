"""Option Greeks on the pages: a position's own Greeks (per share x multiplier x signed quantity)."""

from django import template

from portfolio.rules.greeks import PositionGreekValues, position_greeks

register = template.Library()


@register.filter
def position_greek_values(position) -> PositionGreekValues | None:
    """``{% with g=p|position_greek_values %}``: the position's delta in shares, dollar delta, gamma,
    theta and vega in money; None for a position without known Greeks (a stock, or empty Greeks)."""
    greeks = getattr(position, "greeks", None)  # joined by the selector
    if greeks is None or None in (greeks.delta, greeks.gamma, greeks.theta, greeks.vega):
        return None
    return position_greeks(
        delta=greeks.delta,
        gamma=greeks.gamma,
        theta=greeks.theta,
        vega=greeks.vega,
        multiplier=position.instrument.multiplier,
        quantity=position.quantity,
        underlying_price=greeks.underlying_price,
    )
