"""Explaining classifiers: CAM methods, their faithfulness/stability metrics, class-model visualization."""
from cnnlab.explain.cam import (METHODS, BaseCAM, GradCAM, GradCAMPlusPlus, ScoreCAM, ShapCAM, feature_layers,
                                get_cam, resolve_layer)
from cnnlab.explain.metrics import deletion_auc, insertion_auc, noise_stability, perturbation_curve
from cnnlab.explain.shapley import exact_shapley, sample_shapley
from cnnlab.explain.visualize import class_model

__all__ = ["METHODS", "BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "ShapCAM", "feature_layers", "get_cam",
           "resolve_layer", "deletion_auc", "insertion_auc", "noise_stability", "perturbation_curve",
           "exact_shapley", "sample_shapley", "class_model"]
