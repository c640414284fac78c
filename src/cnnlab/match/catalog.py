"""The names ``cnnlab match`` offers, without torch: the CLI's parser is built from them.

They must equal the registries they name (``cnnlab.match.matcher.METHODS`` and
``cnnlab.match.api.BENCHMARK_METHODS``, which adds OpenCV as the peer); a test checks that.
"""
METHOD_NAMES = ("zncc-pixel", "zncc", "qatm", "dim")
BENCHMARK_NAMES = ("opencv", *METHOD_NAMES)
DEFAULT_METHOD = "qatm"
