"""The OC Pizza domain: pizzerias, ingredients, pizzas and recipes, stock, orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q, Sum

QUANTITY = {"max_digits": 10, "decimal_places": 3}


class Pizzeria(models.Model):
    """A point of sale, identified by its name."""

    name = models.CharField(max_length=100, unique=True)
    street = models.CharField(max_length=200)
    postal_code = models.CharField(max_length=10)
    city = models.CharField(max_length=100)
    phone = models.CharField(max_length=30, blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        """The postal address on one line."""
        return f"{self.street}, {self.postal_code} {self.city}"

    def can_make(self, pizza: Pizza, count: int = 1) -> bool:
        """Whether this pizzeria's stock holds every ingredient for ``count`` pizzas."""
        stock = {item.ingredient_id: item.quantity for item in self.stock_items.all()}
        return all(
            stock.get(line.ingredient_id, Decimal(0)) >= line.quantity * count
            for line in pizza.recipe_lines.all()
        )


class Ingredient(models.Model):
    """Something pizzas are made of, counted in one unit."""

    class Unit(models.TextChoices):
        GRAM = "g", "gram"
        MILLILITRE = "ml", "millilitre"
        PIECE = "piece", "piece"

    name = models.CharField(max_length=100, unique=True)
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.GRAM)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Pizza(models.Model):
    """A pizza of the menu; its recipe lists the ingredients and quantities."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(
        max_digits=6, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    is_available = models.BooleanField(default=True)
    ingredients = models.ManyToManyField(
        Ingredient, through="RecipeLine", related_name="pizzas", blank=True
    )

    class Meta:
        ordering = ("name",)
        constraints = (
            models.CheckConstraint(condition=Q(price__gte=0), name="pizza_price_not_negative"),
        )

    def __str__(self) -> str:
        return self.name


class RecipeLine(models.Model):
    """How much of one ingredient one pizza takes."""

    pizza = models.ForeignKey(Pizza, on_delete=models.CASCADE, related_name="recipe_lines")
    ingredient = models.ForeignKey(
        Ingredient, on_delete=models.PROTECT, related_name="recipe_lines"
    )
    quantity = models.DecimalField(**QUANTITY, validators=[MinValueValidator(Decimal("0.001"))])

    class Meta:
        ordering = ("pizza__name", "ingredient__name")
        constraints = (
            models.UniqueConstraint(
                fields=["pizza", "ingredient"], name="recipe_line_unique_ingredient"
            ),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="recipe_quantity_positive"),
        )

    def __str__(self) -> str:
        return f"{self.pizza}: {self.quantity} {self.ingredient.unit} {self.ingredient}"


class Stock(models.Model):
    """How much of one ingredient one pizzeria holds."""

    pizzeria = models.ForeignKey(Pizzeria, on_delete=models.CASCADE, related_name="stock_items")
    ingredient = models.ForeignKey(Ingredient, on_delete=models.PROTECT, related_name="stock_items")
    quantity = models.DecimalField(
        **QUANTITY, default=Decimal(0), validators=[MinValueValidator(Decimal("0"))]
    )

    class Meta:
        ordering = ("pizzeria__name", "ingredient__name")
        verbose_name_plural = "stock"
        constraints = (
            models.UniqueConstraint(
                fields=["pizzeria", "ingredient"], name="stock_unique_ingredient"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=0), name="stock_quantity_not_negative"
            ),
        )

    def __str__(self) -> str:
        return f"{self.pizzeria}: {self.quantity} {self.ingredient.unit} {self.ingredient}"


class Order(models.Model):
    """A customer's order at one pizzeria."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PAID = "paid", "paid"
        PREPARING = "preparing", "preparing"
        READY = "ready", "ready"
        DELIVERING = "delivering", "delivering"
        DELIVERED = "delivered", "delivered"
        CANCELLED = "cancelled", "cancelled"

    pizzeria = models.ForeignKey(Pizzeria, on_delete=models.PROTECT, related_name="orders")
    customer_name = models.CharField(max_length=100)
    customer_phone = models.CharField(max_length=30, blank=True)
    delivery_address = models.CharField(
        max_length=300, blank=True, help_text="Empty for a take-away order."
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")

    def __str__(self) -> str:
        return f"Order #{self.pk} ({self.get_status_display()})"

    @property
    def total(self) -> Decimal:
        """The sum of the order's lines."""
        result = self.lines.aggregate(total=Sum(F("quantity") * F("unit_price")))["total"]
        return Decimal(result or 0).quantize(Decimal("0.01"))


class OrderLine(models.Model):
    """A number of one pizza in an order, at the price of the day."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    pizza = models.ForeignKey(Pizza, on_delete=models.PROTECT, related_name="order_lines")
    quantity = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    unit_price = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        blank=True,
        help_text="Copied from the pizza's price when left empty.",
    )

    class Meta:
        ordering = ("order", "pizza__name")
        constraints = (
            models.UniqueConstraint(fields=["order", "pizza"], name="order_line_unique_pizza"),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="order_line_quantity_positive"
            ),
        )

    def __str__(self) -> str:
        return f"{self.quantity} x {self.pizza}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.unit_price is None:
            self.unit_price = self.pizza.price
        super().save(*args, **kwargs)

    @property
    def line_total(self) -> Decimal:
        """quantity x unit price."""
        return self.quantity * (self.unit_price or Decimal(0))


class ResourceImport(models.Model):
    """One import of the starting data (§4.1.5) into this database, by content.

    ``import_resources --once`` writes a row per set of spreadsheets it imports
    (or adopts) and skips a set already recorded: a new or rebuilt app server
    never imports the same spreadsheets again over the prices and stock
    edited since. The unique checksum also serializes importers: a second
    app server that tries to record the same set waits for the first one's
    transaction and then finds the set recorded.
    """

    checksum = models.CharField(max_length=64, unique=True)
    files = models.TextField(help_text="The imported .xlsx file names, one per line.")
    imported_at = models.DateTimeField(auto_now_add=True)
    imported_by = models.CharField(max_length=255, blank=True, help_text="Host that imported.")
    adopted = models.BooleanField(
        default=False,
        help_text=(
            "Recorded without importing: the data came from an import made before rows were kept."
        ),
    )

    class Meta:
        ordering = ("-imported_at",)

    def __str__(self) -> str:
        return f"{self.checksum[:12]} ({self.imported_at:%Y-%m-%d %H:%M})"
