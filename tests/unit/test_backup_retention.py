"""Retention policy of ocpizza-backup: exactly which backups are pruned."""

from __future__ import annotations

import datetime as dt

from ocpizza_backup.retention import RetentionEntry, plan_retention

Entry = RetentionEntry
UTC = dt.UTC


def at(day: str, hhmm: str = "01:30") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=UTC)


def name(when: dt.datetime) -> str:
    return f"oc_pizza-{when:%Y%m%dT%H%M%SZ}"


def entries(*times: dt.datetime, bad: tuple[dt.datetime, ...] = ()) -> list:
    return [Entry(name(t), t, True) for t in times] + [Entry(name(t), t, False) for t in bad]


def daily(first: str, days: int) -> list[dt.datetime]:
    start = at(first)
    return [start + dt.timedelta(days=n) for n in range(days)]


def test_sixty_daily_backups_keep_seven_days_and_four_weeks():
    # 2026-01-01 .. 2026-03-01 at 01:30Z; 2026-03-01 is a Sunday (ISO week 9).
    times = daily("2026-01-01", 60)
    plan = plan_retention(entries(*times), keep_daily=7, keep_weekly=4)
    kept = {
        name(at(d))
        for d in (
            "2026-03-01",
            "2026-02-28",
            "2026-02-27",
            "2026-02-26",
            "2026-02-25",
            "2026-02-24",
            "2026-02-23",
            # newest of ISO weeks 8, 7, 6 (week 9 is 03-01, already kept)
            "2026-02-22",
            "2026-02-15",
            "2026-02-08",
        )
    }
    assert set(plan.keep) == kept
    assert set(plan.prune) == {name(t) for t in times} - kept
    assert plan.keep[name(at("2026-03-01"))] == [
        "newest good backup",
        "daily 2026-03-01",
        "weekly 2026-W09",
    ]
    assert plan.keep[name(at("2026-02-15"))] == ["weekly 2026-W07"]


def test_several_backups_a_day_keep_the_newest_of_each_day():
    times = [
        at("2026-03-10", "01:30"),
        at("2026-03-10", "11:00"),
        at("2026-03-10", "16:45"),
        at("2026-03-11", "01:30"),
        at("2026-03-11", "09:12"),
    ]
    plan = plan_retention(entries(*times), keep_daily=7, keep_weekly=0)
    assert sorted(plan.keep) == [name(at("2026-03-10", "16:45")), name(at("2026-03-11", "09:12"))]
    assert len(plan.prune) == 3


def test_gaps_count_days_that_have_a_backup_not_calendar_days():
    times = [at("2026-03-01"), at("2026-03-05"), at("2026-03-20")]
    plan = plan_retention(entries(*times), keep_daily=2, keep_weekly=0)
    assert set(plan.keep) == {name(at("2026-03-20")), name(at("2026-03-05"))}
    assert plan.prune == [name(at("2026-03-01"))]


def test_a_corrupt_newest_backup_is_not_the_newest_good_one():
    good = daily("2026-03-01", 10)
    broken = (at("2026-03-11"), at("2026-03-12"))
    plan = plan_retention(entries(*good, bad=broken), keep_daily=3, keep_weekly=0)
    # The three newest *good* days are kept; the corrupt ones do not take their place.
    kept_good = {name(at(d)) for d in ("2026-03-10", "2026-03-09", "2026-03-08")}
    assert kept_good <= set(plan.keep)
    assert plan.keep[name(at("2026-03-10"))][0] == "newest good backup"
    # Newer than the oldest kept backup: kept for inspection, never counted.
    for t in broken:
        assert plan.keep[name(t)] == ["does not verify: kept for inspection"]


def test_an_old_corrupt_backup_is_pruned():
    plan = plan_retention(
        entries(*daily("2026-03-01", 5), bad=(at("2026-02-01"),)), keep_daily=7, keep_weekly=4
    )
    assert plan.prune == [name(at("2026-02-01"))]


def test_nothing_is_pruned_when_no_backup_verifies():
    bad = tuple(daily("2026-01-01", 30))
    plan = plan_retention(entries(bad=bad), keep_daily=1, keep_weekly=0)
    assert plan.prune == []
    assert len(plan.keep) == 30


def test_the_newest_good_backup_is_kept_even_with_no_daily_slot():
    times = daily("2026-03-01", 3)
    plan = plan_retention(entries(*times), keep_daily=0, keep_weekly=0)
    assert list(plan.keep) == [name(at("2026-03-03"))]
    assert len(plan.prune) == 2


def test_a_backup_whose_time_is_unknown_is_never_pruned():
    plan = plan_retention(
        [*entries(*daily("2026-03-01", 3)), Entry("odd", None, False)], keep_daily=1, keep_weekly=0
    )
    assert plan.keep["odd"] == ["time unknown: never pruned"]
    assert "odd" not in plan.prune


def test_weeks_follow_iso_years():
    # 2025-12-29 (Mon) .. 2026-01-04 (Sun) is ISO week 2026-W01.
    times = [at("2025-12-27"), at("2025-12-28"), at("2025-12-29"), at("2026-01-04")]
    plan = plan_retention(entries(*times), keep_daily=1, keep_weekly=2)
    assert plan.keep[name(at("2026-01-04"))][-1] == "weekly 2026-W01"
    assert plan.keep[name(at("2025-12-28"))] == ["weekly 2025-W52"]
    assert set(plan.prune) == {name(at("2025-12-27")), name(at("2025-12-29"))}
