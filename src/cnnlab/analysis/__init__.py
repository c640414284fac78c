"""Model analysis: per-layer shapes, parameters, MACs and receptive fields; BatchNorm folding.

``from cnnlab.analysis.summary import summarize`` and ``from cnnlab.analysis.fold import fold_batchnorm``
(not imported here, so that ``cnnlab --help`` does not load torch).
"""
