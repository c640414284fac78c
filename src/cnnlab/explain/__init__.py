"""Explaining classifiers: CAM methods, their faithfulness/stability metrics, class-model visualization.

The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {
    "cnnlab.explain.cam": ["METHODS", "BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "ShapCAM",
                           "feature_layers", "get_cam", "resolve_layer"],
    "cnnlab.explain.metrics": ["deletion_auc", "insertion_auc", "map_correlation", "map_shift", "noise_stability",
                               "perturbation_curve", "topk_overlap"],
    "cnnlab.explain.shapley": ["exact_shapley", "sample_shapley"],
    "cnnlab.explain.visualize": ["class_model"],
}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
