"""Former home of the classification API, kept so ``from cnnlab.train.classify import ...`` works.

Classification now lives in :mod:`cnnlab.classify` (``train/`` is the shared engine).
"""
from cnnlab.classify.api import (  # noqa: F401
    checkpoint_splits, evaluate_checkpoint, load_image, make_loaders, predict_files, report, show_samples,
    train_classifier,
)
from cnnlab.classify.recipes import DEFAULT_RECIPE, RECIPES, resolve_options, train_config  # noqa: F401
