"""Theory labs: each claim of the course as a runnable, measured experiment (``cnnlab lab``).

``run_lab("bn-learning-rate", out="runs/lab", quick=True)`` writes ``result.json`` (every number
and the settings), ``figure.png`` and ``summary.md`` (a conclusion generated from the numbers).
One module per lab; ``cnnlab lab list`` shows them with their course question.
"""
from cnnlab.labs.frame import LabContext, LabResult, get_lab, list_labs, register_lab, run_lab

__all__ = ["LabContext", "LabResult", "get_lab", "list_labs", "register_lab", "run_lab"]
