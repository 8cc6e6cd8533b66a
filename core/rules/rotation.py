"""Which backups to keep: grandfather-father-son rotation, decided from the backups' times alone.

For each of the last ``daily`` days that have a backup, that day's newest backup is kept; likewise
the newest of each of the last ``weekly`` ISO weeks and of the last ``monthly`` calendar months
that have one (restic's ``--keep-daily/--keep-weekly/--keep-monthly``). The three sets overlap and
are kept together. Days, weeks and months are counted in UTC, the zone of the file names. Counting
periods that *have* a backup, not calendar periods, means a pause (a long weekend, a stopped server)
never lets rotation delete the last backups made before it.

The newest backup is always kept, whatever the counts, so rotation can never leave nothing.
"""

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class RotationPolicy:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12

    def __post_init__(self) -> None:
        if min(self.daily, self.weekly, self.monthly) < 0:
            raise ValueError(f"rotation counts cannot be negative: {self}")


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _iso_week(moment: datetime) -> Hashable:
    iso = moment.isocalendar()
    return iso.year, iso.week  # the ISO year: 2024-12-30 is in week 1 of 2025


def _month(moment: datetime) -> Hashable:
    return moment.year, moment.month


def backups_to_keep(times: Iterable[datetime], *, policy: RotationPolicy) -> set[datetime]:
    """The subset of ``times`` (aware datetimes) to keep; the rest may be deleted."""
    moments = set(times)
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"backup time {moment!r} has no time zone")
    newest_first = sorted(moments, key=lambda m: m.astimezone(UTC), reverse=True)
    if not newest_first:
        return set()

    keep = {newest_first[0]}
    buckets: list[tuple[int, Callable[[datetime], Hashable]]] = [
        (policy.daily, _day),
        (policy.weekly, _iso_week),
        (policy.monthly, _month),
    ]
    for count, bucket_of in buckets:
        seen: set[Hashable] = set()
        for moment in newest_first:
            if len(seen) >= count:
                break
            bucket = bucket_of(moment.astimezone(UTC))
            if bucket not in seen:  # newest first: the first one met in a period is its newest
                seen.add(bucket)
                keep.add(moment)
    return keep
