"""Training recipes, one module each, linear and readable: setup, train (the shared loop in
:mod:`plinth.tuning.loop`), save, cleanup. Recipes register by method name, as a plugin's
would (:func:`register_recipe`)."""

from __future__ import annotations

import importlib
from typing import Any

_RECIPES: dict[str, str] = {
    "lora": "plinth.tuning.recipes.lora",
    "full": "plinth.tuning.recipes.full",
    "prompt_tuning": "plinth.tuning.recipes.prompt_tuning",
}

#: the learning rate a method uses when the spec gives none
DEFAULT_LR = {"lora": 2e-4, "full": 2e-5, "prompt_tuning": 3e-2}


def register_recipe(method: str, module: str) -> None:
    """``module`` defines ``setup(base_dir, spec, device) -> Trainable`` and
    ``save(trainable, dest, spec, base_dir) -> str`` (the artifact kind: adapter or model)."""
    _RECIPES[method] = module


def recipe(method: str) -> Any:
    return importlib.import_module(_RECIPES[method])


def methods() -> list[str]:
    return sorted(_RECIPES)
