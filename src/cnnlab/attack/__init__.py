"""Adversarial attacks in [0, 1] pixel space (FGSM, I-FGSM, PGD) and robustness sweeps.

The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.attack.attacks": ["ATTACKS", "fgsm", "ifgsm", "pgd", "run_attack"],
         "cnnlab.attack.sweep": ["accuracy_vs_eps", "iterative_targeted", "min_flip_eps", "min_targeted_eps", "smallest_eps"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
