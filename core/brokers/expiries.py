"""How an option's end of life crosses the broker boundary: the deterministic ids of its settlement fills.

Neither IBKR's API nor its Flex report gives an expiry, an exercise or an assignment an execution id
(the API reports none of them; Flex reports them as book entries without ``ibExecID``). So that the
position sync, which infers them, and a Flex import, which reads them, store the same fills under the
same keys (nothing doubled whichever comes first), each leg is keyed by what identifies the event: the
account, the option contract (``InstrumentSpec.key``: symbol, type, currency, expiry, strike, right,
multiplier) and the leg. An option ends its life once per account, so the key is unique.

Legs: the option closed at 0 because it expired worthless (``exp``), because it was assigned (``asg``) or
exercised (``exr``), and the underlying delivered at the strike (``stk``).
"""

import hashlib

from django.db import models

SETTLEMENT_PREFIX = "optx-"


class SettlementLeg(models.TextChoices):
    EXPIRED = "exp", "Expired worthless"
    ASSIGNED = "asg", "Assigned"
    EXERCISED = "exr", "Exercised"
    DELIVERY = "stk", "Underlying delivered at the strike"


OPTION_LEGS = (SettlementLeg.EXPIRED, SettlementLeg.ASSIGNED, SettlementLeg.EXERCISED)


def settlement_base(*, account_id: str, option_key: str) -> str:
    """The part of the ids the legs of one option's settlement share."""
    digest = hashlib.sha256(f"{account_id}|{option_key}".encode()).hexdigest()[:24]
    return f"{SETTLEMENT_PREFIX}{digest}-"


def settlement_exec_id(*, account_id: str, option_key: str, leg: str) -> str:
    """The exec id of one leg of an option's settlement (33 characters)."""
    return f"{settlement_base(account_id=account_id, option_key=option_key)}{SettlementLeg(leg).value}"


def settlement_leg_of(exec_id: str) -> SettlementLeg | None:
    """The leg a settlement fill's exec id names; None for any other fill."""
    if not exec_id.startswith(SETTLEMENT_PREFIX):
        return None
    try:
        return SettlementLeg(exec_id.rsplit("-", 1)[-1])
    except ValueError:
        return None
