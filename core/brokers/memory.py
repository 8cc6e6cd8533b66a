"""A broker held in memory: for benchmarks and tests that must not measure file parsing."""

from datetime import datetime

from core.brokers.base import (
    Bar,
    BrokerAccount,
    BrokerCashFlow,
    BrokerError,
    BrokerExecution,
    BrokerPosition,
    Fetched,
    Quote,
)


class MemoryBroker:
    name = "memory"

    def __init__(
        self,
        *,
        accounts: list[BrokerAccount],
        positions: dict[str, list[BrokerPosition]] | None = None,
        executions: dict[str, list[BrokerExecution]] | None = None,
    ) -> None:
        self.account_rows = {a.account_id: a for a in accounts}
        self.position_rows = positions or {}
        self.execution_rows = executions or {}

    def _known(self, account_id: str) -> None:
        if account_id not in self.account_rows:
            raise BrokerError(f"account {account_id} is not known to the broker")

    def accounts(self) -> Fetched[BrokerAccount]:
        return Fetched(items=tuple(self.account_rows.values()))

    def positions(self, account_id: str) -> Fetched[BrokerPosition]:
        self._known(account_id)
        return Fetched(items=tuple(self.position_rows.get(account_id, ())))

    def executions(self, account_id: str, since: datetime | None = None) -> Fetched[BrokerExecution]:
        self._known(account_id)
        rows = self.execution_rows.get(account_id, ())
        return Fetched(items=tuple(e for e in rows if since is None or e.executed_at >= since))

    def cash_flows(self, account_id: str) -> Fetched[BrokerCashFlow]:
        self._known(account_id)
        return Fetched(items=())

    def bars(
        self, symbol: str, bar_size: str, start: datetime | None = None, end: datetime | None = None
    ) -> Fetched[Bar]:
        return Fetched(items=())

    def quote(self, symbol: str) -> Quote | None:
        return None
