"""Import of the starting data from Excel workbooks (operations document §4.1.5).

Each ``.xlsx`` file of the resources directory may hold any of these sheets
(names are case-insensitive; the first row holds the column names):

=============  ===============================================  ==================
sheet          columns (* = required)                           natural key
=============  ===============================================  ==================
ingredients    name*, unit* (g, ml or piece)                    name
pizzerias      name*, street*, postal_code*, city*, phone       name
pizzas         name*, price*, description, available (yes/no)   name
recipes        pizza*, ingredient*, quantity*                   pizza + ingredient
stock          pizzeria*, ingredient*, quantity*                pizzeria + ingredient
=============  ===============================================  ==================

Rows are upserted by natural key: a row whose record exists with the same
values is left alone, so importing the same files twice changes nothing.
Any malformed row stops the import with an error naming the file, the sheet
and the row, and nothing at all is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from shop.models import Ingredient, Pizza, Pizzeria, RecipeLine, Stock


class ResourceError(Exception):
    """A malformed resource file, sheet or row."""


@dataclass(frozen=True)
class Row:
    """One data row of a sheet, with where it comes from."""

    file: str
    sheet: str
    number: int
    values: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}, sheet '{self.sheet}', row {self.number}"

    def error(self, message: str) -> ResourceError:
        return ResourceError(f"{self.where}: {message}")


@dataclass(frozen=True)
class SheetSpec:
    """What a sheet holds and how to write one of its rows."""

    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


SHEETS: dict[str, SheetSpec] = {
    spec.name: spec
    for spec in (
        SheetSpec("ingredients", ("name", "unit")),
        SheetSpec("pizzerias", ("name", "street", "postal_code", "city"), ("phone",)),
        SheetSpec("pizzas", ("name", "price"), ("description", "available")),
        SheetSpec("recipes", ("pizza", "ingredient", "quantity")),
        SheetSpec("stock", ("pizzeria", "ingredient", "quantity")),
    )
}
# Order of writing: referenced records first.
ORDER = ("ingredients", "pizzerias", "pizzas", "recipes", "stock")


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return self.created + self.updated


@dataclass
class ImportReport:
    """What an import did, per sheet."""

    files: list[str] = field(default_factory=list)
    counts: dict[str, Counts] = field(default_factory=lambda: {name: Counts() for name in ORDER})

    @property
    def total(self) -> Counts:
        total = Counts()
        for counts in self.counts.values():
            total.created += counts.created
            total.updated += counts.updated
            total.unchanged += counts.unchanged
        return total

    @property
    def changed(self) -> bool:
        return self.total.changed > 0


# --- reading -------------------------------------------------------------------


def find_workbooks(directory: Path) -> list[Path]:
    """The ``.xlsx`` files of ``directory``, sorted, without Office lock files."""
    if not directory.is_dir():
        raise ResourceError(f"{directory}: not a directory")
    files = sorted(
        path
        for path in directory.iterdir()
        if path.is_file()
        and path.suffix.lower() == ".xlsx"
        and not path.name.startswith(("~$", "."))
    )
    if not files:
        raise ResourceError(f"{directory}: no .xlsx file to import")
    return files


def _header_name(value: Any) -> str:
    return str(value).strip().lower().replace(" ", "_") if value is not None else ""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def read_workbook(path: Path) -> dict[str, list[Row]]:
    """Read the known sheets of one workbook into rows keyed by column name."""
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise ResourceError(f"{path.name}: not a readable .xlsx workbook ({exc})") from None
    sheets: dict[str, list[Row]] = {}
    try:
        for worksheet in workbook.worksheets:
            sheet_name = worksheet.title.strip().lower()
            spec = SHEETS.get(sheet_name)
            if spec is None:
                continue
            rows = worksheet.iter_rows(values_only=True)
            header = next(rows, None)
            columns = [_header_name(value) for value in (header or ())]
            missing = [name for name in spec.required if name not in columns]
            if missing:
                raise ResourceError(
                    f"{path.name}, sheet '{worksheet.title}', row 1: missing column(s) "
                    f"{', '.join(missing)} (expected {', '.join(spec.required + spec.optional)})"
                )
            wanted = set(spec.required + spec.optional)
            parsed: list[Row] = []
            for number, cells in enumerate(rows, start=2):
                values = {
                    column: value
                    for column, value in zip(columns, cells, strict=False)
                    if column in wanted
                }
                if all(_is_blank(value) for value in values.values()):
                    continue
                parsed.append(Row(path.name, worksheet.title, number, values))
            sheets.setdefault(sheet_name, []).extend(parsed)
    finally:
        workbook.close()
    return sheets


# --- cell values -----------------------------------------------------------------


def text(row: Row, column: str, *, required: bool = True) -> str:
    value = row.values.get(column)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # e.g. a postal code typed as a number
    result = "" if value is None else str(value).strip()
    if required and not result:
        raise row.error(f"column '{column}' is empty")
    return result


def number(row: Row, column: str, *, minimum: Decimal, strict: bool = False) -> Decimal:
    value = row.values.get(column)
    if _is_blank(value):
        raise row.error(f"column '{column}' is empty")
    if isinstance(value, bool):
        raise row.error(f"{column} {value!r} is not a number")
    try:
        result = Decimal(str(value).strip().replace(",", ".").replace("\u00a0", ""))
    except InvalidOperation:
        raise row.error(f"{column} {value!r} is not a number") from None
    if not result.is_finite():
        raise row.error(f"{column} {value!r} is not a number")
    if result < minimum or (strict and result == minimum):
        relation = "greater than" if strict else "at least"
        raise row.error(f"{column} {value!r} must be {relation} {minimum}")
    return result


_YES = {"yes", "y", "true", "1", "oui", "o", "x"}
_NO = {"no", "n", "false", "0", "non"}


def boolean(row: Row, column: str, *, default: bool) -> bool:
    value = row.values.get(column)
    if _is_blank(value):
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        value = str(int(value)) if float(value).is_integer() else str(value)
    lowered = str(value).strip().lower()
    if lowered in _YES:
        return True
    if lowered in _NO:
        return False
    raise row.error(f"{column} {value!r} is not yes or no")


# --- writing ----------------------------------------------------------------------


def _lookup(row: Row, model: type[models.Model], column: str) -> Any:
    name = text(row, column)
    try:
        return model._default_manager.get(name=name)
    except model.DoesNotExist:
        raise row.error(f"unknown {column} '{name}'") from None


def _upsert(
    row: Row,
    model: type[models.Model],
    key: dict[str, Any],
    values: dict[str, Any],
    counts: Counts,
) -> None:
    """Create or update one record; count what happened."""
    instance = model._default_manager.filter(**key).first()
    if instance is None:
        instance = model(**key, **values)
        outcome = "created"
    else:
        differing = {
            name: value for name, value in values.items() if getattr(instance, name) != value
        }
        if not differing:
            counts.unchanged += 1
            return
        for name, value in differing.items():
            setattr(instance, name, value)
        outcome = "updated"
    try:
        instance.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        details = "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
        raise row.error(details) from None
    instance.save()
    setattr(counts, outcome, getattr(counts, outcome) + 1)


def _write_ingredient(row: Row, counts: Counts) -> None:
    unit = text(row, "unit").lower()
    if unit not in Ingredient.Unit.values:
        raise row.error(f"unit '{unit}' is not one of {', '.join(Ingredient.Unit.values)}")
    _upsert(row, Ingredient, {"name": text(row, "name")}, {"unit": unit}, counts)


def _write_pizzeria(row: Row, counts: Counts) -> None:
    values = {
        "street": text(row, "street"),
        "postal_code": text(row, "postal_code"),
        "city": text(row, "city"),
        "phone": text(row, "phone", required=False),
    }
    _upsert(row, Pizzeria, {"name": text(row, "name")}, values, counts)


def _write_pizza(row: Row, counts: Counts) -> None:
    values = {
        "price": number(row, "price", minimum=Decimal(0)),
        "description": text(row, "description", required=False),
        "is_available": boolean(row, "available", default=True),
    }
    _upsert(row, Pizza, {"name": text(row, "name")}, values, counts)


def _write_recipe(row: Row, counts: Counts) -> None:
    key = {
        "pizza": _lookup(row, Pizza, "pizza"),
        "ingredient": _lookup(row, Ingredient, "ingredient"),
    }
    values = {"quantity": number(row, "quantity", minimum=Decimal(0), strict=True)}
    _upsert(row, RecipeLine, key, values, counts)


def _write_stock(row: Row, counts: Counts) -> None:
    key = {
        "pizzeria": _lookup(row, Pizzeria, "pizzeria"),
        "ingredient": _lookup(row, Ingredient, "ingredient"),
    }
    values = {"quantity": number(row, "quantity", minimum=Decimal(0))}
    _upsert(row, Stock, key, values, counts)


WRITERS: dict[str, Callable[[Row, Counts], None]] = {
    "ingredients": _write_ingredient,
    "pizzerias": _write_pizzeria,
    "pizzas": _write_pizza,
    "recipes": _write_recipe,
    "stock": _write_stock,
}
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "ingredients": ("name",),
    "pizzerias": ("name",),
    "pizzas": ("name",),
    "recipes": ("pizza", "ingredient"),
    "stock": ("pizzeria", "ingredient"),
}


def _check_duplicates(sheet: str, rows: Iterable[Row]) -> None:
    seen: dict[tuple[str, ...], Row] = {}
    for row in rows:
        key = tuple(text(row, column) for column in KEY_COLUMNS[sheet])
        if key in seen:
            first = seen[key]
            raise row.error(
                f"duplicate {' + '.join(KEY_COLUMNS[sheet])} {' + '.join(key)!r} "
                f"(already in {first.where})"
            )
        seen[key] = row


def _all_rows(workbooks: Iterable[dict[str, list[Row]]], sheet: str) -> Iterator[Row]:
    for workbook in workbooks:
        yield from workbook.get(sheet, [])


class _DryRunRollback(Exception):
    pass


def import_resources(directory: Path, *, dry_run: bool = False) -> ImportReport:
    """Import every workbook of ``directory`` in one transaction; see the module doc."""
    report = ImportReport()
    files = find_workbooks(directory)
    workbooks = [read_workbook(path) for path in files]
    report.files = [path.name for path in files]
    if not any(workbook for workbook in workbooks):
        raise ResourceError(
            f"{directory}: no sheet named {', '.join(ORDER)} in {', '.join(report.files)}"
        )
    for sheet in ORDER:
        _check_duplicates(sheet, _all_rows(workbooks, sheet))
    try:
        with transaction.atomic():
            for sheet in ORDER:
                for row in _all_rows(workbooks, sheet):
                    WRITERS[sheet](row, report.counts[sheet])
            if dry_run:
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return report
