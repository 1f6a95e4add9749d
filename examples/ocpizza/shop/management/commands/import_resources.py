"""``manage.py import_resources [DIRECTORY]``: load the starting data from Excel files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop.resources import ORDER, ResourceError, import_resources


class Command(BaseCommand):
    help = (
        "Import pizzerias, ingredients, pizzas, recipes and stock from the .xlsx files of "
        "a directory (default: OCPIZZA_RESOURCES_DIR). Idempotent: records are upserted "
        "by name, and a second import of the same files changes nothing. A malformed "
        "file is refused as a whole. The last line is 'No changes.' or 'Changes written.'"
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

    def handle(self, *args: Any, **options: Any) -> None:
        directory = Path(options["directory"] or settings.OCPIZZA_RESOURCES_DIR)
        try:
            report = import_resources(directory, dry_run=options["dry_run"])
        except ResourceError as exc:
            raise CommandError(f"Import refused, nothing was written: {exc}") from None
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
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was written.")
        elif report.changed:
            self.stdout.write(self.style.SUCCESS("Changes written."))
        else:
            self.stdout.write("No changes.")
