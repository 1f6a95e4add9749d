"""Small helpers building test data."""

from __future__ import annotations

from decimal import Decimal

from shop.models import Ingredient, Pizza, Pizzeria, RecipeLine, Stock


def make_pizzeria(name: str = "OC Pizza Test") -> Pizzeria:
    return Pizzeria.objects.create(
        name=name, street="1 rue de Test", postal_code="75001", city="Paris"
    )


def make_margherita() -> Pizza:
    dough = Ingredient.objects.create(name="Dough", unit=Ingredient.Unit.PIECE)
    cheese = Ingredient.objects.create(name="Mozzarella", unit=Ingredient.Unit.GRAM)
    pizza = Pizza.objects.create(name="Margherita", price=Decimal("9.50"))
    RecipeLine.objects.create(pizza=pizza, ingredient=dough, quantity=Decimal(1))
    RecipeLine.objects.create(pizza=pizza, ingredient=cheese, quantity=Decimal(125))
    return pizza


def stock(pizzeria: Pizzeria, name: str, quantity: str) -> Stock:
    return Stock.objects.create(
        pizzeria=pizzeria,
        ingredient=Ingredient.objects.get(name=name),
        quantity=Decimal(quantity),
    )
