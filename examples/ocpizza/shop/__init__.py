"""OC Pizza shop: pizzerias, pizzas and their recipes, stock and orders."""
