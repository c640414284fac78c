"""Adversarial attacks in [0, 1] pixel space (FGSM, I-FGSM, PGD) and robustness sweeps."""
from cnnlab.attack.attacks import ATTACKS, fgsm, ifgsm, pgd, run_attack
from cnnlab.attack.sweep import accuracy_vs_eps, min_flip_eps

__all__ = ["ATTACKS", "fgsm", "ifgsm", "pgd", "run_attack", "accuracy_vs_eps", "min_flip_eps"]
