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
        bars: list[Bar] | None = None,
        quotes: list[Quote] | None = None,
    ) -> None:
        self.account_rows = {a.account_id: a for a in accounts}
        self.position_rows = positions or {}
        self.execution_rows = executions or {}
        self.bar_rows: dict[tuple[str, str], list[Bar]] = {}
        for bar in bars or ():
            self.bar_rows.setdefault((bar.symbol, bar.bar_size), []).append(bar)
        self.quote_rows = {q.symbol: q for q in quotes or ()}
        # What bars() was asked, in order: (symbol, bar size, start, end). Tests read it to prove a
        # sync asks only for what is missing.
        self.bar_requests: list[tuple[str, str, datetime | None, datetime | None]] = []
        # An exception to raise instead of answering, per call name ("bars", "quote"): a test's outage.
        self.failures: dict[str, Exception] = {}

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
        self.bar_requests.append((symbol, bar_size, start, end))
        if "bars" in self.failures:
            raise self.failures["bars"]
        rows = self.bar_rows.get((symbol.upper(), bar_size), ())
        return Fetched(
            items=tuple(
                sorted(
                    (b for b in rows if (start is None or b.start >= start) and (end is None or b.start < end)),
                    key=lambda b: b.start,
                )
            )
        )

    def quote(self, symbol: str) -> Quote | None:
        if "quote" in self.failures:
            raise self.failures["quote"]
        return self.quote_rows.get(symbol.upper())
