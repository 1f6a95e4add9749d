"""Retention: which backups to keep (a pure function), and pruning the rest."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ocpizza_backup.common import log, parse_time
from ocpizza_backup.config import Config
from ocpizza_backup.manifest import STAMP_RE, backup_files, list_ids
from ocpizza_backup.verify import Verification, verify


@dataclasses.dataclass(frozen=True)
class RetentionEntry:
    """What the retention policy needs to know about one backup."""

    id: str
    time: dt.datetime | None
    good: bool


@dataclasses.dataclass
class RetentionPlan:
    keep: dict[str, list[str]]
    prune: list[str]


def plan_retention(
    entries: Sequence[RetentionEntry], keep_daily: int, keep_weekly: int
) -> RetentionPlan:
    """Decide which backups to keep; a pure function of the backups.

    * daily: the newest good backup of each of the ``keep_daily`` most recent
      UTC days that have one;
    * weekly: the newest good backup of each of the ``keep_weekly`` most
      recent ISO weeks that have one;
    * the newest good backup is always kept;
    * a backup that does not verify is never counted: it is kept while it is
      newer than the oldest kept good backup (to be looked at), pruned after;
    * a backup whose time is unknown is never pruned;
    * with no good backup at all, nothing is pruned.
    """
    keep: dict[str, list[str]] = {e.id: [] for e in entries}
    good = sorted(
        (e for e in entries if e.good and e.time is not None),
        key=lambda e: (e.time, e.id),
        reverse=True,
    )
    if not good:
        for reasons in keep.values():
            reasons.append("no verified backup exists: nothing is pruned")
        return RetentionPlan(keep, [])
    keep[good[0].id].append("newest good backup")
    days: list[dt.date] = []
    weeks: list[tuple[int, int]] = []
    for entry in good:
        assert entry.time is not None
        day = entry.time.astimezone(dt.UTC).date()
        if day not in days and len(days) < keep_daily:
            days.append(day)
            keep[entry.id].append(f"daily {day.isoformat()}")
        year, week, _ = day.isocalendar()
        if (year, week) not in weeks and len(weeks) < keep_weekly:
            weeks.append((year, week))
            keep[entry.id].append(f"weekly {year}-W{week:02d}")
    kept_times = [e.time for e in good if keep[e.id] and e.time is not None]
    oldest_kept = min(kept_times)
    for entry in entries:
        if entry.time is None:
            keep[entry.id].append("time unknown: never pruned")
        elif not entry.good and entry.time > oldest_kept:
            keep[entry.id].append("does not verify: kept for inspection")
    prune = sorted(e.id for e in entries if not keep[e.id])
    return RetentionPlan({k: v for k, v in keep.items() if v}, prune)


def retention_entry(root: Path, backup_id: str) -> tuple[RetentionEntry, Verification]:
    """One backup as the policy sees it: its time, and whether it verifies (quick)."""
    check = verify(backup_files(root / backup_id, backup_id), full=False)
    when: dt.datetime | None = None
    if check.manifest is not None:
        with contextlib.suppress(ValueError):
            when = parse_time(check.manifest["finished_at"])
    if when is None and (m := STAMP_RE.search(backup_id)):
        when = dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    return RetentionEntry(backup_id, when, check.ok), check


def prune(cfg: Config, dry_run: bool = False) -> dict[str, Any]:
    """Apply the retention policy to cfg.dir (lock held); say what was kept and removed."""
    entries = []
    for backup_id in list_ids(cfg.dir):
        entry, check = retention_entry(cfg.dir, backup_id)
        if not check.ok:
            log(f"backup {backup_id} does not verify: {'; '.join(check.problems)}", "warning")
        entries.append(entry)
    plan = plan_retention(entries, cfg.keep_daily, cfg.keep_weekly)
    for backup_id in plan.prune:
        if dry_run:
            log(f"would prune {backup_id}")
        else:
            shutil.rmtree(cfg.dir / backup_id)
            log(f"pruned {backup_id} (retention: {cfg.keep_daily} daily, {cfg.keep_weekly} weekly)")
    return {"kept": plan.keep, "pruned": plan.prune, "dry_run": dry_run}
