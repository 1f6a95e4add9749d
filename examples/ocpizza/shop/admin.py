"""Every model of the shop in the Django admin."""

from __future__ import annotations

from django.contrib import admin

from shop.models import Ingredient, Order, OrderLine, Pizza, Pizzeria, RecipeLine, Stock


class StockInline(admin.TabularInline):
    model = Stock
    extra = 0
    autocomplete_fields = ("ingredient",)


class RecipeLineInline(admin.TabularInline):
    model = RecipeLine
    extra = 0
    autocomplete_fields = ("ingredient",)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    autocomplete_fields = ("pizza",)


@admin.register(Pizzeria)
class PizzeriaAdmin(admin.ModelAdmin):
    list_display = ("name", "street", "postal_code", "city", "phone")
    search_fields = ("name", "city", "postal_code")
    inlines = (StockInline,)


@admin.register(Ingredient)
class IngredientAdmin(admin.ModelAdmin):
    list_display = ("name", "unit")
    list_filter = ("unit",)
    search_fields = ("name",)


@admin.register(Pizza)
class PizzaAdmin(admin.ModelAdmin):
    list_display = ("name", "price", "is_available")
    list_filter = ("is_available",)
    search_fields = ("name", "description")
    inlines = (RecipeLineInline,)


@admin.register(RecipeLine)
class RecipeLineAdmin(admin.ModelAdmin):
    list_display = ("pizza", "ingredient", "quantity")
    list_filter = ("pizza",)
    search_fields = ("pizza__name", "ingredient__name")
    autocomplete_fields = ("pizza", "ingredient")


@admin.register(Stock)
class StockAdmin(admin.ModelAdmin):
    list_display = ("pizzeria", "ingredient", "quantity")
    list_filter = ("pizzeria",)
    search_fields = ("pizzeria__name", "ingredient__name")
    autocomplete_fields = ("pizzeria", "ingredient")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "pizzeria", "customer_name", "status", "created_at")
    list_filter = ("status", "pizzeria")
    search_fields = ("customer_name", "customer_phone")
    date_hierarchy = "created_at"
    inlines = (OrderLineInline,)


@admin.register(OrderLine)
class OrderLineAdmin(admin.ModelAdmin):
    list_display = ("order", "pizza", "quantity", "unit_price")
    list_filter = ("order__status",)
    search_fields = ("pizza__name",)
    autocomplete_fields = ("order", "pizza")
