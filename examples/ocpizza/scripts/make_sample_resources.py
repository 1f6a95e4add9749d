#!/usr/bin/env python
"""Write the sample starting-data workbook of the OC Pizza example, byte for byte.

    python scripts/make_sample_resources.py            # writes resources/ocpizza-resources.xlsx
    python scripts/make_sample_resources.py --check    # exit 1 if the committed file differs
    python scripts/make_sample_resources.py OUT.xlsx   # writes elsewhere

The content is fixed, the document properties carry a fixed date and the
.xlsx (a zip) is rewritten with fixed timestamps and no compression, so two
runs give identical bytes. Needs openpyxl (installed from Pipfile.lock).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import sys
import zipfile
from pathlib import Path

from openpyxl import Workbook
from openpyxl.writer.excel import ExcelWriter

APP_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = APP_DIR / "resources" / "ocpizza-resources.xlsx"
FIXED_DATETIME = datetime.datetime(2024, 1, 1, 0, 0, 0)

SHEETS: dict[str, list[tuple[object, ...]]] = {
    "ingredients": [
        ("name", "unit"),
        ("Pâton", "piece"),
        ("Sauce tomate", "ml"),
        ("Crème fraîche", "ml"),
        ("Mozzarella", "g"),
        ("Chèvre", "g"),
        ("Jambon", "g"),
        ("Champignons", "g"),
        ("Artichauts", "g"),
        ("Olives noires", "g"),
        ("Poivrons", "g"),
        ("Oignons", "g"),
        ("Basilic", "g"),
        ("Miel", "ml"),
        ("Huile d'olive", "ml"),
    ],
    "pizzerias": [
        ("name", "street", "postal_code", "city", "phone"),
        ("OC Pizza Bastille", "12 rue de la Roquette", "75011", "Paris", "01 43 00 00 11"),
        ("OC Pizza Montmartre", "5 rue Lepic", "75018", "Paris", "01 46 00 00 18"),
        ("OC Pizza Part-Dieu", "20 boulevard Vivier-Merle", "69003", "Lyon", "04 72 00 00 03"),
    ],
    "pizzas": [
        ("name", "price", "description", "available"),
        ("Margherita", 9.5, "Sauce tomate, mozzarella, basilic frais.", "yes"),
        ("Reine", 11, "Sauce tomate, mozzarella, jambon, champignons.", "yes"),
        (
            "Quatre saisons",
            12.5,
            "Jambon, champignons, artichauts, olives noires.",
            "yes",
        ),
        ("Chèvre miel", 12, "Crème fraîche, chèvre, miel, huile d'olive.", "yes"),
        ("Végétarienne", 11.5, "Poivrons, oignons, champignons, olives noires.", "yes"),
        ("Calzone", 13, "Chausson au jambon et à la mozzarella.", "no"),
    ],
    "recipes": [
        ("pizza", "ingredient", "quantity"),
        ("Margherita", "Pâton", 1),
        ("Margherita", "Sauce tomate", 80),
        ("Margherita", "Mozzarella", 125),
        ("Margherita", "Basilic", 5),
        ("Reine", "Pâton", 1),
        ("Reine", "Sauce tomate", 80),
        ("Reine", "Mozzarella", 100),
        ("Reine", "Jambon", 60),
        ("Reine", "Champignons", 50),
        ("Quatre saisons", "Pâton", 1),
        ("Quatre saisons", "Sauce tomate", 80),
        ("Quatre saisons", "Mozzarella", 100),
        ("Quatre saisons", "Jambon", 40),
        ("Quatre saisons", "Champignons", 40),
        ("Quatre saisons", "Artichauts", 40),
        ("Quatre saisons", "Olives noires", 15),
        ("Chèvre miel", "Pâton", 1),
        ("Chèvre miel", "Crème fraîche", 60),
        ("Chèvre miel", "Chèvre", 90),
        ("Chèvre miel", "Miel", 10),
        ("Chèvre miel", "Huile d'olive", 5),
        ("Végétarienne", "Pâton", 1),
        ("Végétarienne", "Sauce tomate", 80),
        ("Végétarienne", "Mozzarella", 100),
        ("Végétarienne", "Poivrons", 50),
        ("Végétarienne", "Oignons", 30),
        ("Végétarienne", "Champignons", 40),
        ("Végétarienne", "Olives noires", 15),
        ("Calzone", "Pâton", 1.5),
        ("Calzone", "Sauce tomate", 60),
        ("Calzone", "Mozzarella", 120),
        ("Calzone", "Jambon", 80),
    ],
    "stock": [
        ("pizzeria", "ingredient", "quantity"),
        *(
            (pizzeria, ingredient, quantity)
            for pizzeria, factor in (
                ("OC Pizza Bastille", 1),
                ("OC Pizza Montmartre", 2),
                ("OC Pizza Part-Dieu", 3),
            )
            for ingredient, quantity in (
                ("Pâton", 40 * factor),
                ("Sauce tomate", 5000 * factor),
                ("Crème fraîche", 2000 * factor),
                ("Mozzarella", 6000 * factor),
                ("Chèvre", 2000 * factor),
                ("Jambon", 3000 * factor),
                ("Champignons", 2500 * factor),
                ("Artichauts", 1500 * factor),
                ("Olives noires", 800 * factor),
                ("Poivrons", 1500 * factor),
                ("Oignons", 1500 * factor),
                ("Basilic", 200 * factor),
                ("Miel", 500 * factor),
                ("Huile d'olive", 1000 * factor),
            )
        ),
    ],
}


def build_workbook() -> Workbook:
    """The sample workbook, one sheet per kind of record."""
    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, rows in SHEETS.items():
        worksheet = workbook.create_sheet(title)
        for row in rows:
            worksheet.append(row)
        worksheet.freeze_panes = "A2"
    properties = workbook.properties
    properties.creator = "OC Pizza"
    properties.lastModifiedBy = "OC Pizza"
    properties.title = "OC Pizza starting data (sample)"
    properties.created = FIXED_DATETIME
    properties.modified = FIXED_DATETIME
    return workbook


def build_workbook_bytes() -> bytes:
    """The sample workbook as stable .xlsx bytes."""
    raw = io.BytesIO()
    # ExcelWriter, unlike Workbook.save(), keeps our fixed "modified" date.
    ExcelWriter(build_workbook(), zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED)).save()
    stable = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw.getvalue())) as source,
        zipfile.ZipFile(stable, "w", zipfile.ZIP_STORED) as target,
    ):
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename, date_time=FIXED_DATETIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            target.writestr(info, source.read(entry.filename))
    return stable.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--check", action="store_true", help="compare with OUTPUT instead of writing it"
    )
    args = parser.parse_args(argv)
    data = build_workbook_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if args.check:
        current = args.output.read_bytes() if args.output.exists() else b""
        if current != data:
            print(f"{args.output} differs from the generated sample (sha256 {digest})")
            return 1
        print(f"{args.output} is up to date (sha256 {digest})")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
