"""IBKR's historical-data pacing, shared by every process through the database."""

from datetime import timedelta

import pytest

from core.brokers.pacing import PacingLimited, PacingRules, pacing_acquire, pacing_reserve
from core.models import HistoricalRequest

pytestmark = pytest.mark.django_db


def test_an_identical_request_within_15_seconds_waits():
    assert pacing_reserve(contract="AAPL", request="AAPL 1d 1 Y") == 0
    wait = pacing_reserve(contract="AAPL", request="AAPL 1d 1 Y")
    assert 14 < wait <= 15
    assert HistoricalRequest.objects.count() == 1  # the refused one took no slot


def test_at_most_five_requests_for_one_contract_within_two_seconds():
    waits = [pacing_reserve(contract="AAPL", request=f"AAPL 1m chunk {i}") for i in range(6)]
    assert waits[:5] == [0, 0, 0, 0, 0] and 0 < waits[5] <= 2
    assert pacing_reserve(contract="MSFT", request="MSFT 1m chunk 0") == 0  # another contract is free


def test_sixty_requests_per_ten_minutes_across_contracts():
    rules = PacingRules(per_window=3, contract_window=timedelta(0))
    assert [pacing_reserve(contract=s, request=s, rules=rules) for s in "ABC"] == [0, 0, 0]
    assert 590 < pacing_reserve(contract="D", request="D", rules=rules) <= 600


def test_acquire_waits_when_it_is_short_and_gives_up_when_it_is_long():
    slept: list[float] = []
    rules = PacingRules(identical_within=timedelta(seconds=1))
    pacing_acquire(contract="A", request="A", rules=rules, sleep=slept.append)
    pacing_acquire(
        contract="A",
        request="A",
        rules=rules,
        max_wait=5,
        sleep=lambda s: (slept.append(s), HistoricalRequest.objects.all().delete()),
    )
    assert len(slept) == 1 and 0 < slept[0] <= 1
    with pytest.raises(PacingLimited, match="left for a later run"):
        pacing_acquire(contract="A", request="A", rules=PacingRules(), max_wait=1, sleep=slept.append)
