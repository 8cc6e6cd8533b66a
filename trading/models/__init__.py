from trading.models.accounts import Account, AccountQuerySet, AccountType, DayTradeRule
from trading.models.compliance import (
    CashAccountState,
    CashViolation,
    DayTrade,
    DayTradeCounting,
    FrequencyPeriod,
    SettlementStatus,
    SettlementTracking,
    TradeFrequencyTracking,
    ViolationKind,
)
from trading.models.executions import CashFlow, CashFlowKind, Execution, ExecutionSource, Side
from trading.models.ledger import Lot, LotMatch, RoundTrip, RoundTripDirection, RoundTripOutcome
from trading.models.sync import SyncKind, SyncReason, SyncRun, SyncStatus

__all__ = [
    "Account",
    "AccountQuerySet",
    "AccountType",
    "CashAccountState",
    "CashFlow",
    "CashFlowKind",
    "CashViolation",
    "DayTrade",
    "DayTradeCounting",
    "DayTradeRule",
    "Execution",
    "ExecutionSource",
    "FrequencyPeriod",
    "Lot",
    "LotMatch",
    "RoundTrip",
    "RoundTripDirection",
    "RoundTripOutcome",
    "SettlementStatus",
    "SettlementTracking",
    "Side",
    "SyncKind",
    "SyncReason",
    "SyncRun",
    "SyncStatus",
    "TradeFrequencyTracking",
    "ViolationKind",
]
