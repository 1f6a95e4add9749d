"""``manage.py import_resources [DIRECTORY]``: load the starting data from Excel files."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction

from shop.models import ResourceImport
from shop.resources import ORDER, ImportReport, ResourceError, find_workbooks, import_resources


def files_checksum(files: list[Path]) -> str:
    """The sha256 of a set of files, by content and name.

    The same value as ``sha256sum ./<name>... | sha256sum`` run in their
    directory (names sorted), which role app recorded on the migrating host
    before imports were recorded in the database (``--adopt``).
    """
    lines = []
    for path in sorted(files, key=lambda p: p.name):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  ./{path.name}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


class Command(BaseCommand):
    help = (
        "Import pizzerias, ingredients, pizzas, recipes and stock from the .xlsx files of "
        "a directory (default: OCPIZZA_RESOURCES_DIR). Idempotent: records are upserted "
        "by name, and a second import of the same files changes nothing. A malformed "
        "file is refused as a whole. With --once, a set of files is imported once per "
        "database: the import is recorded (table shop_resourceimport: checksum, date, "
        "host) and the same set is never imported again over later edits. The last line "
        "is 'No changes.' or 'Changes written.'"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "directory",
            nargs="?",
            help="Directory of the .xlsx files (default: settings.OCPIZZA_RESOURCES_DIR).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check the files and report what would change, then roll back.",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help=(
                "Import this set of files only if this database has no record of it, and "
                "record it (checksum, date, host) in the same transaction."
            ),
        )
        parser.add_argument(
            "--adopt",
            metavar="CHECKSUM",
            default="",
            help=(
                "With --once: when the database has no record of the set and CHECKSUM is the "
                "set's checksum (an import made before imports were recorded), record it "
                "without importing."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["directory"] or settings.OCPIZZA_RESOURCES_DIR)
        try:
            if options["once"]:
                self._once(directory, dry_run=options["dry_run"], adopt=options["adopt"].strip())
                return
            report = import_resources(directory, dry_run=options["dry_run"])
        except ResourceError as exc:
            raise CommandError(f"Import refused, nothing was written: {exc}") from None
        self._report(directory, report, dry_run=options["dry_run"])

    def _once(self, directory: Path, *, dry_run: bool, adopt: str) -> None:
        """Import the set of files unless recorded; record it in the same transaction."""
        files = find_workbooks(directory)
        checksum = files_checksum(files)
        with transaction.atomic():
            recorded = ResourceImport.objects.filter(checksum=checksum).first()
            if recorded is None and not dry_run:
                try:
                    # The unique checksum is the lock: another importer inserting
                    # the same set waits here until this transaction ends.
                    with transaction.atomic():
                        ResourceImport.objects.create(
                            checksum=checksum,
                            files="\n".join(path.name for path in files),
                            imported_by=socket.getfqdn(),
                            adopted=adopt == checksum,
                        )
                except IntegrityError:
                    recorded = ResourceImport.objects.filter(checksum=checksum).first()
                    if recorded is None:  # pragma: no cover - the other importer rolled back
                        raise CommandError(
                            "Import refused: another import of the same files is running."
                        ) from None
            if recorded is not None:
                when = f"{recorded.imported_at:%Y-%m-%d %H:%M:%S}"
                by = recorded.imported_by or "an unknown host"
                self.stdout.write(
                    f"Already imported into this database on {when} by {by} "
                    f"(checksum {checksum[:12]}): skipped."
                )
                self.stdout.write("No changes.")
                return
            if adopt == checksum:
                self.stdout.write(
                    f"Recorded as imported without importing (checksum {checksum[:12]}, "
                    "imported before imports were recorded)."
                )
                self.stdout.write(self.style.SUCCESS("Changes written."))
                return
            report = import_resources(directory, dry_run=dry_run)
        # A new record is a change, even when the rows already held these values.
        self._report(directory, report, dry_run=dry_run, recorded=True)

    def _report(
        self, directory: Path, report: ImportReport, *, dry_run: bool, recorded: bool = False
    ) -> None:
        self.stdout.write(
            f"Read {len(report.files)} file(s) from {directory}: {', '.join(report.files)}"
        )
        for sheet in ORDER:
            counts = report.counts[sheet]
            self.stdout.write(
                f"{sheet}: {counts.created} created, {counts.updated} updated, "
                f"{counts.unchanged} unchanged"
            )
        total = report.total
        self.stdout.write(
            f"total: {total.created} created, {total.updated} updated, {total.unchanged} unchanged"
        )
        if dry_run:
            if recorded:
                self.stdout.write("Would record the import (--once: no record of these files).")
            self.stdout.write("Dry run: nothing was written.")
        elif report.changed or recorded:
            self.stdout.write(self.style.SUCCESS("Changes written."))
        else:
            self.stdout.write("No changes.")
