"""Named experiments of the paper as YAML recipes: ``load(name, **overrides)``."""
from pcw_keras.recipes.recipe import Datasets, Recipe, list_recipes, load, parse_override, recipe_dir
from pcw_keras.recipes.schema import SCHEMA, defaults, validate

__all__ = ["Datasets", "Recipe", "SCHEMA", "defaults", "list_recipes", "load", "parse_override", "recipe_dir", "validate"]
