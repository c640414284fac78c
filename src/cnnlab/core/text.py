"""Text every report shares: markdown tables, top-k class listings, and the verdict wording of the labs.

A lab or a study reports a difference between two settings only when it is larger than the
noise of its seeds: a difference is real only beyond twice its seed standard error, else it is
"within noise". :func:`versus` is that rule, once; :func:`spread` gives the spread it is judged by,
:func:`seed_gap` the standard error of a difference over seeds, and :func:`verdict` the sentence
that names the comparison, its difference and spread, and the outcome. Numbers that hold no
evidence (no case, a mean of nothing, an exact tie with no spread, one seed) give no verdict at
all (:func:`undecided`); :func:`verdict_sentence` picks a lab's sentence by these rules, and :func:`judged` writes
the verdict followed by that sentence.
All are plain Python, so any layer (labs, explain, reports) may use them without torch.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping, Sequence


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


def undecided(difference: float, noise: float, cases: int | None = None) -> str | None:
    """Why no verdict can be drawn from these numbers, or None when one can.

    A conclusion needs cases: none (``cases == 0``), a difference that is not a number (a mean of
    nothing), a noise that could not be measured (infinite: fewer than two cases), or a difference
    of exactly 0 with no spread at all (a quick run whose two settings scored the same, e.g. both at
    chance) show nothing either way, and saying "within noise" would be a conclusion drawn from nothing.
    """
    if cases == 0:
        return "no case to compare (n = 0)"
    if math.isnan(difference):
        return "the difference is not a number (nothing to average)"
    if not math.isfinite(noise):
        return "too few cases to measure the noise"
    if difference == 0 and noise == 0:
        return "both scored exactly the same with no spread measured, which tells nothing apart"
    return None


def versus(difference: float, noise: float, cases: int | None = None) -> str:
    """``"higher"``, ``"lower"``, ``"same"`` or ``"undecided"``: is ``difference`` outside twice the seed ``noise``?

    Labs pick their sentence with it (through :func:`verdict_sentence`), so a gap the seeds' spread could
    explain is never reported as a win (a single seed has no spread: then any nonzero gap counts),
    and numbers that hold no evidence (:func:`undecided`) are never reported as a result.
    """
    if undecided(difference, noise, cases) is not None:
        return "undecided"
    if difference > 2 * noise:
        return "higher"
    if difference < -2 * noise:
        return "lower"
    return "same"


def verdict_sentence(sentences: Mapping[str, str], difference: float, noise: float, cases: int | None = None) -> str:
    """The sentence of :func:`versus`'s answer from ``sentences`` ("higher", "lower", "same"), or, when
    the numbers decide nothing, "no verdict: " and why."""
    why = undecided(difference, noise, cases)
    return f"no verdict: {why}" if why is not None else sentences[versus(difference, noise)]


def verdict(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float]) -> str:
    """One sentence: both means, the difference ± twice its standard error over seeds, and the outcome.

    ``"A 0.85 vs B 0.80: +0.050 ± 0.012 (2 SE, 3 seeds): A higher"``, or ``"... within noise"``
    when the difference does not exceed twice its standard error; "no verdict: ..." with a single seed.
    """
    gap = seed_gap(a, b)
    spread_text = (f"± {2 * gap['se']:.3f} (2 SE, {gap['n']} seeds)" if math.isfinite(gap["se"])
                   else "(one seed: no spread to judge by)")
    outcome = verdict_sentence({"higher": f"{name_a} higher", "lower": f"{name_a} lower", "same": "within noise"},
                               gap["difference"], gap["se"])
    return (f"{name_a} {statistics.fmean(a):.4f} vs {name_b} {statistics.fmean(b):.4f}: "
            f"{gap['difference']:+.4f} {spread_text}: {outcome}")


def judged(name_a: str, a: Sequence[float], name_b: str, b: Sequence[float], sentences: Mapping[str, str]) -> str:
    """:func:`verdict`'s sentence, then what its outcome means for the question: the "higher", "lower" or
    "same" sentence of ``sentences`` for :func:`versus` on :func:`seed_gap`.

    ``"A 0.85 vs B 0.80: +0.050 ± 0.012 (2 SE, 3 seeds): A higher; the skips help"``. With no verdict
    (one seed, no cases) nothing follows: the verdict already says why, and no meaning is drawn from nothing.
    """
    gap = seed_gap(a, b)
    meaning = ("" if undecided(gap["difference"], gap["se"], gap["n"]) is not None
               else "; " + sentences[versus(gap["difference"], gap["se"], gap["n"])])
    return verdict(name_a, a, name_b, b) + meaning


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
