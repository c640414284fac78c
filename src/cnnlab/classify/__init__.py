"""Image classification on the shared engine: train, evaluate, predict, show, and the recipes.

``train_classifier`` / ``evaluate_checkpoint`` / ``predict_files`` / ``show_samples`` live in
``cnnlab.classify.api`` (a run goes through ``cnnlab.runs.lifecycle``); a trained classifier comes
back from its checkpoint with ``load_classifier`` (``cnnlab.runs.restore``); what each dataset
trains with by default is in ``cnnlab.classify.recipes``. The names below are imported on first use
(:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.classify.api": ["evaluate_checkpoint", "predict_files", "show_samples", "train_classifier"],
         "cnnlab.classify.recipes": ["NAMED_RECIPES", "RECIPES", "resolve_options", "train_config"],
         "cnnlab.runs.restore": ["load_classifier", "pixel_model"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
