"""The names ``cnnlab match`` offers, without torch: the CLI's parser is built from them.

They must equal the registries they name (``cnnlab.match.matcher.METHODS`` and
``cnnlab.match.api.BENCHMARK_METHODS``, which adds OpenCV as the peer); a test checks that.
"""
METHOD_NAMES = ("zncc-pixel", "zncc", "qatm", "dim", "dim-qatm")
BENCHMARK_NAMES = ("opencv", *METHOD_NAMES)
# chosen by 5-fold cross-validation over BBS videos: "dim" won every fold, held-out AUC 0.698
# (benchmarks/match_default_cv.py); "qatm" had led on the dev third it was tuned on, then fell to 0.650
DEFAULT_METHOD = "dim"
