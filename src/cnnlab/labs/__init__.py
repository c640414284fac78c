"""Theory labs: each claim of the course as a runnable, measured experiment (``cnnlab lab``).

``run_lab("bn-learning-rate", out="runs/lab", quick=True)`` writes ``result.json`` (every number
and the settings), ``figure.png`` and ``summary.md`` (a conclusion generated from the numbers).
One module per lab in ``labs/catalog``; ``cnnlab lab list`` shows them with their course question.
The names below are imported on first use (:mod:`cnnlab.core.lazy`), so the CLI's parser stays torch-free.
"""
from cnnlab.core.lazy import lazy_exports

_FROM = {"cnnlab.labs.frame": ["LabContext", "LabResult", "get_lab", "list_labs", "register_lab", "run_lab"]}
__all__ = [name for names in _FROM.values() for name in names]
__getattr__, __dir__ = lazy_exports(__name__, {name: module for module, names in _FROM.items() for name in names})
