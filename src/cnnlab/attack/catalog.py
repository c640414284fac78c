"""The names ``cnnlab attack`` offers, without torch: the CLI's parser is built from them.

They must equal the registry they name (``cnnlab.attack.attacks.ATTACKS``); a test checks that.
"""
ATTACK_NAMES = ("fgsm", "ifgsm", "pgd")
