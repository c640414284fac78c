"""Classification recipes: what `cnnlab train` uses for every option the user leaves out.

A dataset's recipe (``RECIPES``) fills the options left out for that dataset, on top of
``DEFAULT_RECIPE``; ``train_config`` turns a recipe plus the user's overrides into the engine's
``TrainConfig``.
"""
from __future__ import annotations

from dataclasses import fields

from cnnlab.train.engine import TrainConfig

# Default recipe per dataset: what `cnnlab train --dataset X` uses when an option is not given.
# Fashion-MNIST's is chosen for a CPU budget: with 8 epochs the small CNN gains more from seeing
# clean images than from augmentation (92.9% vs 91.6-92.0% test; benchmarks/results/fm_simple_cnn_sweep.jsonl).
RECIPES: dict[str, dict] = {
    "digits": dict(model="simple-cnn", epochs=20, batch_size=64, lr=0.05, label_smoothing=0.1),
    "fashion-mnist": dict(model="simple-cnn", epochs=6, batch_size=128, lr=0.1, label_smoothing=0.1, augment="none"),
    "mnist": dict(model="simple-cnn", epochs=6, batch_size=128, lr=0.05, label_smoothing=0.1),
    "cifar10": dict(model="resnet9", epochs=20, batch_size=256, lr=0.2, label_smoothing=0.2),
    "cifar100": dict(model="resnet9", epochs=30, batch_size=256, lr=0.2, label_smoothing=0.1),
}
DEFAULT_RECIPE = dict(model="resnet9", epochs=20, batch_size=64, lr=0.05, label_smoothing=0.1)


def recipe_for(dataset: str) -> dict:
    """The dataset's recipe on top of the defaults (model, training settings, augmentation)."""
    return {**DEFAULT_RECIPE, **RECIPES.get(dataset, {})}


def train_config(dataset: str, **overrides) -> TrainConfig:
    """The dataset's default recipe with the given (non-None) overrides applied."""
    recipe = recipe_for(dataset)
    valid = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in recipe.items() if k in valid}
    values.update({k: v for k, v in overrides.items() if v is not None and k in valid})
    return TrainConfig(**values)
