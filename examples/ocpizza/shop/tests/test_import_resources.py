from __future__ import annotations

import subprocess
import tempfile
from decimal import Decimal
from io import StringIO
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import QuerySet
from django.test import TestCase
from openpyxl import Workbook

from shop.management.commands.import_resources import files_checksum
from shop.models import Ingredient, Pizza, Pizzeria, RecipeLine, ResourceImport, Stock

SAMPLE_DIR = Path(settings.BASE_DIR) / "resources"

GOOD: dict[str, list[tuple[object, ...]]] = {
    "ingredients": [("name", "unit"), ("Dough", "piece"), ("Mozzarella", "g")],
    "pizzerias": [
        ("name", "street", "postal_code", "city", "phone"),
        ("OC Pizza Test", "1 rue de Test", 75001, "Paris", None),
    ],
    "pizzas": [("name", "price", "description", "available"), ("Margherita", 9.5, "", "oui")],
    "recipes": [
        ("pizza", "ingredient", "quantity"),
        ("Margherita", "Dough", 1),
        ("Margherita", "Mozzarella", "125,5"),
    ],
    "stock": [("pizzeria", "ingredient", "quantity"), ("OC Pizza Test", "Dough", 10)],
}


def write_workbook(directory: Path, name: str, sheets: dict[str, list[tuple[object, ...]]]) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        worksheet = workbook.create_sheet(title)
        for row in rows:
            worksheet.append(row)
    path = directory / name
    workbook.save(path)
    return path


class ImportResourcesTests(TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.dir = Path(self._tmp.name)

    def run_import(self, *args: str) -> str:
        out = StringIO()
        call_command("import_resources", *args, stdout=out)
        return out.getvalue()

    def assert_refused(self, sheets: dict[str, list[tuple[object, ...]]], *expected: str) -> str:
        write_workbook(self.dir, "data.xlsx", sheets)
        with self.assertRaises(CommandError) as caught:
            self.run_import(str(self.dir))
        message = str(caught.exception)
        self.assertIn("nothing was written", message)
        for text in expected:
            self.assertIn(text, message)
        for model in (Ingredient, Pizzeria, Pizza, RecipeLine, Stock):
            self.assertFalse(model.objects.exists(), f"{model.__name__} written")
        return message

    def test_import_then_reimport_changes_nothing(self) -> None:
        write_workbook(self.dir, "data.xlsx", GOOD)
        first = self.run_import(str(self.dir))
        self.assertIn("total: 7 created, 0 updated, 0 unchanged", first)
        self.assertTrue(first.rstrip().endswith("Changes written."))
        self.assertEqual(Pizzeria.objects.get().postal_code, "75001")
        self.assertEqual(
            RecipeLine.objects.get(ingredient__name="Mozzarella").quantity, Decimal("125.5")
        )
        self.assertTrue(Pizza.objects.get().is_available)

        second = self.run_import(str(self.dir))
        self.assertIn("total: 0 created, 0 updated, 7 unchanged", second)
        self.assertTrue(second.rstrip().endswith("No changes."))

    def test_changed_value_is_updated(self) -> None:
        write_workbook(self.dir, "data.xlsx", GOOD)
        self.run_import(str(self.dir))
        changed = dict(GOOD)
        changed["pizzas"] = [GOOD["pizzas"][0], ("Margherita", 10, "", "no")]
        write_workbook(self.dir, "data.xlsx", changed)
        output = self.run_import(str(self.dir))
        self.assertIn("pizzas: 0 created, 1 updated, 0 unchanged", output)
        pizza = Pizza.objects.get()
        self.assertEqual(pizza.price, Decimal("10.00"))
        self.assertFalse(pizza.is_available)

    def test_sheets_may_be_spread_over_several_files(self) -> None:
        write_workbook(self.dir, "1-catalog.xlsx", {k: GOOD[k] for k in ("recipes", "pizzas")})
        write_workbook(
            self.dir, "2-shops.xlsx", {k: GOOD[k] for k in ("ingredients", "pizzerias", "stock")}
        )
        (self.dir / "~$lock.xlsx").write_bytes(b"office lock file")
        (self.dir / "notes.txt").write_text("ignored")
        output = self.run_import(str(self.dir))
        self.assertIn("Read 2 file(s)", output)
        self.assertIn("total: 7 created", output)

    def test_dry_run_writes_nothing(self) -> None:
        write_workbook(self.dir, "data.xlsx", GOOD)
        output = self.run_import(str(self.dir), "--dry-run")
        self.assertIn("total: 7 created", output)
        self.assertIn("Dry run", output)
        self.assertFalse(Ingredient.objects.exists())

    def test_default_directory_is_the_setting(self) -> None:
        write_workbook(self.dir, "data.xlsx", GOOD)
        with self.settings(OCPIZZA_RESOURCES_DIR=self.dir):
            self.assertIn("total: 7 created", self.run_import())

    def test_missing_column_is_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["pizzas"] = [("name", "description"), ("Margherita", "")]
        self.assert_refused(sheets, "data.xlsx", "sheet 'pizzas'", "row 1", "price")

    def test_bad_number_is_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["stock"] = [
            GOOD["stock"][0],
            ("OC Pizza Test", "Dough", 10),
            ("", "", ""),
            ("OC Pizza Test", "Mozzarella", "lots"),
        ]
        self.assert_refused(sheets, "data.xlsx", "sheet 'stock'", "row 4", "'lots'")

    def test_negative_quantity_is_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["recipes"] = [GOOD["recipes"][0], ("Margherita", "Dough", 0)]
        self.assert_refused(sheets, "sheet 'recipes'", "row 2", "greater than 0")

    def test_unknown_reference_is_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["recipes"] = [*GOOD["recipes"], ("Margherita", "Pineapple", 50)]
        self.assert_refused(sheets, "sheet 'recipes'", "row 4", "unknown ingredient 'Pineapple'")

    def test_unknown_unit_and_too_long_value_are_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["ingredients"] = [GOOD["ingredients"][0], ("Dough", "kg")]
        self.assert_refused(sheets, "sheet 'ingredients'", "row 2", "unit 'kg'")
        sheets["ingredients"] = [GOOD["ingredients"][0], ("x" * 101, "g")]
        self.assert_refused(sheets, "sheet 'ingredients'", "row 2", "name")

    def test_duplicate_key_is_refused(self) -> None:
        sheets = dict(GOOD)
        sheets["ingredients"] = [*GOOD["ingredients"], ("Dough", "g")]
        self.assert_refused(sheets, "row 4", "duplicate name", "row 2")

    def test_refused_import_keeps_existing_data(self) -> None:
        write_workbook(self.dir, "data.xlsx", GOOD)
        self.run_import(str(self.dir))
        sheets = dict(GOOD)
        sheets["pizzas"] = [GOOD["pizzas"][0], ("Margherita", 99, "", "yes"), ("Bad", "x", "", "")]
        write_workbook(self.dir, "data.xlsx", sheets)
        with self.assertRaises(CommandError):
            self.run_import(str(self.dir))
        self.assertEqual(Pizza.objects.get().price, Decimal("9.50"))

    def test_empty_or_missing_directory_is_refused(self) -> None:
        with self.assertRaisesMessage(CommandError, "no .xlsx file"):
            self.run_import(str(self.dir))
        with self.assertRaisesMessage(CommandError, "not a directory"):
            self.run_import(str(self.dir / "missing"))

    def test_unreadable_workbook_is_refused(self) -> None:
        (self.dir / "broken.xlsx").write_bytes(b"not a zip")
        with self.assertRaisesMessage(CommandError, "broken.xlsx"):
            self.run_import(str(self.dir))

    def test_committed_sample_imports_idempotently(self) -> None:
        first = self.run_import(str(SAMPLE_DIR))
        self.assertIn("Changes written.", first)
        self.assertEqual(Pizzeria.objects.count(), 3)
        self.assertEqual(Pizza.objects.count(), 6)
        self.assertTrue(
            Pizzeria.objects.get(name="OC Pizza Bastille").can_make(
                Pizza.objects.get(name="Margherita")
            )
        )
        second = self.run_import(str(SAMPLE_DIR))
        self.assertIn(" 0 created, 0 updated,", second)
        self.assertTrue(second.rstrip().endswith("No changes."))


class ImportOnceTests(TestCase):
    """``--once``: a set of spreadsheets is imported once per database, and recorded there."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.dir = Path(self._tmp.name)
        write_workbook(self.dir, "data.xlsx", GOOD)

    def run_import(self, *args: str) -> str:
        out = StringIO()
        call_command("import_resources", str(self.dir), "--once", *args, stdout=out)
        return out.getvalue()

    def test_first_import_is_recorded_with_checksum_and_date(self) -> None:
        output = self.run_import()
        self.assertIn("total: 7 created", output)
        self.assertTrue(output.rstrip().endswith("Changes written."))
        record = ResourceImport.objects.get()
        self.assertEqual(record.checksum, files_checksum([self.dir / "data.xlsx"]))
        self.assertEqual(record.files, "data.xlsx")
        self.assertIsNotNone(record.imported_at)
        self.assertFalse(record.adopted)

    def test_same_files_are_never_imported_again_over_edits(self) -> None:
        self.run_import()
        Pizza.objects.update(price=Decimal("12.00"))
        Stock.objects.update(quantity=Decimal("3"))
        output = self.run_import()
        self.assertIn("Already imported into this database", output)
        self.assertTrue(output.rstrip().endswith("No changes."))
        self.assertEqual(Pizza.objects.get().price, Decimal("12.00"))
        self.assertEqual(Stock.objects.get().quantity, Decimal("3"))
        self.assertEqual(ResourceImport.objects.count(), 1)

    def test_changed_files_are_imported_and_recorded_again(self) -> None:
        self.run_import()
        changed = dict(GOOD)
        changed["pizzas"] = [GOOD["pizzas"][0], ("Margherita", 11, "", "oui")]
        write_workbook(self.dir, "data.xlsx", changed)
        output = self.run_import()
        self.assertIn("pizzas: 0 created, 1 updated", output)
        self.assertEqual(Pizza.objects.get().price, Decimal("11.00"))
        self.assertEqual(ResourceImport.objects.count(), 2)

    def test_refused_import_records_nothing(self) -> None:
        sheets = dict(GOOD)
        sheets["stock"] = [GOOD["stock"][0], ("OC Pizza Test", "Dough", "lots")]
        write_workbook(self.dir, "data.xlsx", sheets)
        with self.assertRaises(CommandError):
            self.run_import()
        self.assertFalse(ResourceImport.objects.exists())
        self.assertFalse(Pizza.objects.exists())

    def test_dry_run_says_it_would_import_and_records_nothing(self) -> None:
        output = self.run_import("--dry-run")
        self.assertIn("Would record the import", output)
        self.assertIn("Dry run: nothing was written.", output)
        self.assertFalse(ResourceImport.objects.exists())
        self.assertFalse(Pizza.objects.exists())
        self.run_import()
        self.assertIn("Already imported", self.run_import("--dry-run"))

    def test_importer_that_records_second_skips(self) -> None:
        # Another app server recorded the same files between this one's lookup
        # and its insert: the unique checksum stops this one, which imports nothing.
        ResourceImport.objects.create(
            checksum=files_checksum([self.dir / "data.xlsx"]), files="data.xlsx", imported_by="app9"
        )
        real_first = QuerySet.first
        lookups: list[int] = []

        def first_misses_once(queryset: QuerySet) -> object:
            lookups.append(1)
            return None if len(lookups) == 1 else real_first(queryset)

        with mock.patch.object(QuerySet, "first", first_misses_once):
            output = self.run_import()
        self.assertIn("by app9", output)
        self.assertTrue(output.rstrip().endswith("No changes."))
        self.assertFalse(Pizza.objects.exists())
        self.assertEqual(ResourceImport.objects.count(), 1)

    def test_adopt_records_an_earlier_import_without_importing(self) -> None:
        checksum = files_checksum([self.dir / "data.xlsx"])
        output = self.run_import("--adopt", checksum)
        self.assertIn("Recorded as imported without importing", output)
        self.assertFalse(Pizza.objects.exists())
        self.assertTrue(ResourceImport.objects.get().adopted)
        self.assertIn("Already imported", self.run_import())

    def test_adopt_with_another_checksum_imports(self) -> None:
        output = self.run_import("--adopt", "0" * 64)
        self.assertIn("total: 7 created", output)
        self.assertFalse(ResourceImport.objects.get().adopted)

    def test_checksum_is_the_shell_pipeline_of_role_app(self) -> None:
        write_workbook(self.dir, "b.xlsx", {"ingredients": GOOD["ingredients"]})
        files = [self.dir / "data.xlsx", self.dir / "b.xlsx"]
        shell = subprocess.run(
            "find . -maxdepth 1 -type f -name '*.xlsx' -print0 | sort -z"
            " | xargs -0 -r sha256sum | sha256sum | cut -c1-64",
            shell=True,
            cwd=self.dir,
            capture_output=True,
            text=True,
            check=True,
            env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
        )
        self.assertEqual(files_checksum(files), shell.stdout.strip())
