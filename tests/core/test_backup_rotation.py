"""Grandfather-father-son rotation: which backups to keep, from their times alone."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.rules.rotation import RotationPolicy, backups_to_keep


def at(day: str, clock: str = "21:30") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00")


def daily(first: str, last: str, clock: str = "21:30") -> list[datetime]:
    start, end = at(first, clock), at(last, clock)
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def days(kept: set[datetime]) -> list[str]:
    return sorted(m.astimezone(UTC).date().isoformat() for m in kept)


class TestBackupsToKeep:
    def test_nothing_to_keep_from_nothing(self):
        assert backups_to_keep([], policy=RotationPolicy()) == set()

    def test_the_newest_is_kept_even_when_every_count_is_zero(self):
        times = daily("2026-03-01", "2026-03-05")

        assert days(backups_to_keep(times, policy=RotationPolicy(daily=0, weekly=0, monthly=0))) == ["2026-03-05"]

    def test_daily_weekly_and_monthly_sets_are_kept_together(self):
        # Tuesday 2026-03-10 is the newest. Daily: 10, 9, 8. Weekly: the ISO weeks of 10 (Mon 9 - Sun 15)
        # and of 8 (Mon 2 - Sun 8) end at 10 and 8, already kept. Monthly: March's newest (10), February's (28).
        times = daily("2026-01-01", "2026-03-10")

        kept = backups_to_keep(times, policy=RotationPolicy(daily=3, weekly=2, monthly=2))

        assert days(kept) == ["2026-02-28", "2026-03-08", "2026-03-09", "2026-03-10"]

    def test_default_policy_over_a_year_of_daily_backups(self):
        times = daily("2025-01-01", "2026-06-30")  # the newest is Tuesday 2026-06-30

        kept = backups_to_keep(times, policy=RotationPolicy())

        assert days(kept) == [
            # 12 months: the last day of each, back to July 2025 (June 2026's is the newest)
            "2025-07-31",
            "2025-08-31",
            "2025-09-30",
            "2025-10-31",
            "2025-11-30",
            "2025-12-31",
            "2026-01-31",
            "2026-02-28",
            "2026-03-31",
            "2026-04-30",
            "2026-05-31",
            # 4 weeks: the Sundays ending the three weeks before this one (the 28th is also a day kept)
            "2026-06-14",
            "2026-06-21",
            # 7 days
            "2026-06-24",
            "2026-06-25",
            "2026-06-26",
            "2026-06-27",
            "2026-06-28",
            "2026-06-29",
            "2026-06-30",
        ]

    def test_only_the_newest_backup_of_a_day_counts_for_that_day(self):
        times = [at("2026-03-09", "21:30"), at("2026-03-10", "09:00"), at("2026-03-10", "21:30")]

        kept = backups_to_keep(times, policy=RotationPolicy(daily=2, weekly=0, monthly=0))

        assert kept == {at("2026-03-09", "21:30"), at("2026-03-10", "21:30")}

    def test_days_without_a_backup_do_not_count(self):
        # Weekdays only (as the periodic task runs): 7 daily backups reach back over a weekend.
        times = [t for t in daily("2026-02-16", "2026-03-10") if t.weekday() < 5]

        kept = backups_to_keep(times, policy=RotationPolicy(daily=7, weekly=0, monthly=0))

        assert days(kept) == [
            "2026-03-02",
            "2026-03-03",
            "2026-03-04",
            "2026-03-05",
            "2026-03-06",
            "2026-03-09",
            "2026-03-10",
        ]

    def test_a_pause_never_deletes_the_backups_made_before_it(self):
        # A server stopped for two months: the last week before the stop is still the last week.
        times = [*daily("2026-01-01", "2026-01-10"), at("2026-03-20")]

        kept = backups_to_keep(times, policy=RotationPolicy(daily=3, weekly=0, monthly=0))

        assert days(kept) == ["2026-01-09", "2026-01-10", "2026-03-20"]

    def test_iso_weeks_cross_the_new_year(self):
        # Monday 2024-12-30 and Thursday 2025-01-02 are both in ISO week 1 of 2025; Sunday 2024-12-29 is in
        # week 52 of 2024.
        times = [at("2024-12-29"), at("2024-12-30"), at("2025-01-02")]

        weekly = backups_to_keep(times, policy=RotationPolicy(daily=0, weekly=2, monthly=0))
        monthly = backups_to_keep(times, policy=RotationPolicy(daily=0, weekly=0, monthly=2))

        assert days(weekly) == ["2024-12-29", "2025-01-02"]
        assert days(monthly) == ["2024-12-30", "2025-01-02"]

    def test_days_are_utc_days(self):
        # 23:30 in New York on 9 March is 03:30 UTC on 10 March: the same UTC day as the 21:30 backup.
        new_york_evening = datetime(2026, 3, 9, 23, 30, tzinfo=timezone(timedelta(hours=-4)))
        times = [new_york_evening, at("2026-03-10", "21:30"), at("2026-03-08", "21:30")]

        kept = backups_to_keep(times, policy=RotationPolicy(daily=2, weekly=0, monthly=0))

        assert kept == {at("2026-03-10", "21:30"), at("2026-03-08", "21:30")}
        assert new_york_evening not in kept

    def test_repeated_times_are_one_backup(self):
        times = [at("2026-03-10"), at("2026-03-10"), at("2026-03-09")]

        assert backups_to_keep(times, policy=RotationPolicy(daily=1, weekly=0, monthly=0)) == {at("2026-03-10")}

    def test_order_of_the_input_does_not_matter(self):
        times = daily("2025-06-01", "2026-03-10")

        assert backups_to_keep(times, policy=RotationPolicy()) == backups_to_keep(
            list(reversed(times)), policy=RotationPolicy()
        )

    def test_a_future_backup_counts_as_the_newest(self):
        # A clock that ran ahead must not make rotation delete today's backups; the future one is kept too.
        times = [*daily("2026-03-01", "2026-03-10"), at("2027-01-01")]

        kept = backups_to_keep(times, policy=RotationPolicy(daily=2, weekly=0, monthly=0))

        assert days(kept) == ["2026-03-10", "2027-01-01"]

    def test_naive_times_are_refused(self):
        with pytest.raises(ValueError, match="no time zone"):
            backups_to_keep([datetime(2026, 3, 10, 21, 30)], policy=RotationPolicy())

    def test_negative_counts_are_refused(self):
        with pytest.raises(ValueError, match="negative"):
            RotationPolicy(daily=-1)
