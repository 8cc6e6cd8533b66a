"""split_detect: splits with and without cash in lieu, and the trades that only look like them."""

from decimal import Decimal

import pytest

from portfolio.rules.splits import split_detect

D = Decimal


def detect(before: tuple[str, str], after: tuple[str, str]):
    return split_detect(
        quantity_before=D(before[0]), average_before=D(before[1]), quantity_after=D(after[0]), average_after=D(after[1])
    )


@pytest.mark.parametrize(
    ("before", "after", "ratio", "split_to"),
    [
        (("100", "150"), ("200", "75"), D(2), D(200)),
        (("1000", "2.5"), ("100", "25"), D("0.1"), D(100)),
        (("105", "20"), ("10", "200"), D("0.1"), D("10.5")),
        (("101", "30"), ("151", "20"), D("1.5"), D("151.5")),
        (("7", "33.33"), ("0", "0"), None, None),  # a close is never a split
        (("99", "3.00"), ("3", "75.00"), D("0.04"), D("3.96")),  # 1-for-25: 3 whole shares
        (("100", "10.00"), ("33", "30.0000"), D(1) / D(3), D(100) / D(3)),  # 1-for-3
        (("100", "10.00"), ("33", "30.0001"), D(1) / D(3), D(100) / D(3)),  # ... average rounded
    ],
)
def test_ratio_and_quantity_after_the_split(before, after, ratio, split_to):
    found = detect(before, after)
    if ratio is None:
        assert found is None
        return
    assert found is not None
    assert found.ratio == ratio and found.quantity_split == split_to


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (("105", "20"), ("10", "20")),  # sold 95 at cost: average unchanged
        (("105", "20"), ("11", "200")),  # average moved 10x but 11 is not the whole of 10.5
        (("100", "20"), ("10", "200.5")),  # average not moved by a simple ratio
        (("100", "20"), ("-10", "200")),  # side changed
        (("100", "20"), ("20", "90")),  # average moved 2/9: 22.2 would be held, not 20
        (("100", "20"), ("10", "199")),  # close to 1-for-10, but not within the rounding
    ],
)
def test_trades_that_only_look_like_splits(before, after):
    assert detect(before, after) is None
