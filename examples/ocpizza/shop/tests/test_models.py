from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.test import TestCase

from shop.models import Ingredient, Order, OrderLine, Pizza, RecipeLine, Stock
from shop.tests.factories import make_margherita, make_pizzeria, stock


class ModelTests(TestCase):
    def test_pizzeria_address_and_str(self) -> None:
        pizzeria = make_pizzeria("OC Pizza Bastille")
        self.assertEqual(str(pizzeria), "OC Pizza Bastille")
        self.assertEqual(pizzeria.address, "1 rue de Test, 75001 Paris")

    def test_recipe_links_pizza_and_ingredients(self) -> None:
        pizza = make_margherita()
        self.assertEqual(
            sorted(pizza.ingredients.values_list("name", flat=True)), ["Dough", "Mozzarella"]
        )
        self.assertEqual(Ingredient.objects.get(name="Dough").pizzas.get(), pizza)

    def test_can_make_depends_on_stock(self) -> None:
        pizza = make_margherita()
        pizzeria = make_pizzeria()
        self.assertFalse(pizzeria.can_make(pizza))
        stock(pizzeria, "Dough", "2")
        stock(pizzeria, "Mozzarella", "250")
        self.assertTrue(pizzeria.can_make(pizza, 2))
        self.assertFalse(pizzeria.can_make(pizza, 3))

    def test_order_total_and_default_unit_price(self) -> None:
        pizza = make_margherita()
        other = Pizza.objects.create(name="Reine", price=Decimal("11.00"))
        order = Order.objects.create(pizzeria=make_pizzeria(), customer_name="Alice")
        self.assertEqual(order.status, Order.Status.PENDING)
        line = OrderLine.objects.create(order=order, pizza=pizza, quantity=2)
        self.assertEqual(line.unit_price, Decimal("9.50"))
        OrderLine.objects.create(order=order, pizza=other, quantity=1, unit_price=Decimal("10"))
        self.assertEqual(line.line_total, Decimal("19.00"))
        self.assertEqual(order.total, Decimal("29.00"))
        pizza.price = Decimal("12.00")
        pizza.save()
        self.assertEqual(order.total, Decimal("29.00"), "lines keep the price of the day")

    def test_natural_keys_are_unique(self) -> None:
        make_margherita()
        with self.assertRaises(IntegrityError), transaction.atomic():
            Pizza.objects.create(name="Margherita", price=Decimal(1))
        pizza = Pizza.objects.get(name="Margherita")
        with self.assertRaises(IntegrityError), transaction.atomic():
            RecipeLine.objects.create(
                pizza=pizza, ingredient=Ingredient.objects.get(name="Dough"), quantity=1
            )

    def test_quantities_cannot_be_negative(self) -> None:
        make_margherita()
        pizzeria = make_pizzeria()
        with self.assertRaises(IntegrityError), transaction.atomic():
            stock(pizzeria, "Dough", "-1")
        self.assertFalse(Stock.objects.exists())
