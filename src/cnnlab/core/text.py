"""Text every report shares: markdown tables, top-k class listings, and the verdict wording of the labs.

A lab or a study reports a difference between two settings only when it is larger than the
noise of its seeds: a difference is real only beyond twice its seed standard error, else it is
"within noise". :func:`versus` is that rule, once; :func:`spread` gives the spread it is judged by,
:func:`seed_gap` the standard error of a difference over seeds, and :func:`verdict` the sentence
that names the comparison, its difference and spread, and the outcome.
Both are plain Python, so any layer (labs, explain, reports) may use them without torch.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return (f"{v:.4g}" if isinstance(v, float) else str(v)).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def spread(values: Iterable[float]) -> dict:
    """Mean, standard deviation over runs, and the values themselves (the seeds' answers side by side).

    The standard deviation is the sample one (n - 1); a single run has none, so it is 0.
    """
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "values": v}


def seed_gap(a: Sequence[float], b: Sequence[float]) -> dict:
    """Mean of ``a`` minus mean of ``b`` and its standard error ``sqrt(var_a/n_a + var_b/n_b)``.

    With fewer than two values on either side there is no spread to judge by, so the standard
    error is infinite: one seed can never make a difference real.
    """
    a, b = [float(x) for x in a], [float(x) for x in b]
    se = (math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
          if min(len(a), len(b)) > 1 else math.inf)
    return {"difference": statistics.fmean(a) - statistics.fmean(b), "se": se, "n": min(len(a), len(b))}


def versus(difference: float, noise: float) -> str:
    """``"higher"``, ``"lower"`` or ``"same"``: is ``difference`` outside twice ``noise``, its standard error?

    Labs pick their sentence with it, so a gap the seeds' spread could explain is never reported
    as a win (an infinite error, as :func:`seed_gap` gives for one seed, is always "same").
    """
    if difference > 2 * noise:
        return "higher"
    if difference < -2 * noise:
        return "lower"
    return "same"


def verdict(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float]) -> str:
    """One sentence: both means, the difference ± twice its standard error over seeds, and the outcome.

    ``"A 0.85 vs B 0.80: +0.050 ± 0.012 (2 SE, 3 seeds): A higher"``, or ``"... within noise"``
    when the difference does not exceed twice its standard error (always, with a single seed).
    """
    gap = seed_gap(a, b)
    spread_text = (f"± {2 * gap['se']:.3f} (2 SE, {gap['n']} seeds)" if math.isfinite(gap["se"])
                   else "(one seed: no spread to judge by)")
    outcome = {"higher": f"{name_a} higher", "lower": f"{name_a} lower",
               "same": "within noise"}[versus(gap["difference"], gap["se"])]
    return (f"{name_a} {statistics.fmean(a):.4f} vs {name_b} {statistics.fmean(b):.4f}: "
            f"{gap['difference']:+.4f} {spread_text}: {outcome}")


def top_classes(probs: Any, classes: Sequence[str], files: Sequence, topk: int) -> list[dict]:
    """``[{"file": f, "top": [(class, probability), ...]}]``: the k most probable classes per image.

    ``probs`` is any 2-D array with ``tolist`` (NumPy or a CPU tensor), so a prediction through
    onnxruntime lists its classes without torch.
    """
    rows = []
    for f, p in zip(files, probs.tolist()):
        order = sorted(range(len(p)), key=lambda j: -p[j])[:topk]
        rows.append({"file": str(f), "top": [(classes[j], float(p[j])) for j in order]})
    return rows
