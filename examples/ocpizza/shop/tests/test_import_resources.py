from __future__ import annotations

import tempfile
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase
from openpyxl import Workbook

from shop.models import Ingredient, Pizza, Pizzeria, RecipeLine, Stock

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
