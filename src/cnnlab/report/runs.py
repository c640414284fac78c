"""What a report shows of a run folder: every kind of folder cnnlab writes, read into one shape.

Each reader recognises one kind of folder by the files cnnlab writes there (``metrics.json`` of a
classifier or segmenter, a lab's ``result.json``, ``attack.json``, ...) and returns a
:class:`RunView`: headline numbers, configuration, tables, figures and markdown, in the order a
reader of the report wants them. A figure the reader does not place is still shown (under "other
figures"), so a report never hides a file the run wrote.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cnnlab.core.errors import CnnlabError


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class RunView:
    folder: Path
    kind: str                                                # "classification", "segmentation", "lab", ...
    title: str
    headline: dict[str, Any] = field(default_factory=dict)   # the numbers compared across runs
    config: dict[str, Any] = field(default_factory=dict)     # flattened settings
    history: list[dict] = field(default_factory=list)        # per-epoch rows (train_loss, val_accuracy, ...)
    monitor: str = "accuracy"                                # the history's quality metric
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, file), in reading order
    markdown: list[str] = field(default_factory=list)        # markdown documents written by the run
    notes: list[str] = field(default_factory=list)
    label: str = ""                                          # its name in a comparison


def _json(path: Path) -> Any:
    if path.is_file() and inside(path.parent, path.name) is None:
        raise CnnlabError(f"{path}: a link to a file outside the run folder; a report reads only the folder's own files")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CnnlabError(f"{path}: cannot read it as JSON ({exc})") from exc


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.1}}`` -> ``{"train.lr": 0.1}`` (lists kept as values)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _pinned_counts(config: dict) -> dict:
    """config.json with its pinned split files (``data_files``: thousands of paths) shown as counts."""
    files = config.get("data_files")
    if not isinstance(files, dict):
        return config
    counts = {k: f"{len(v)} files" for k, v in files.items() if k in ("train", "val", "test") and isinstance(v, list)}
    return {**config, "data_files": counts}


def inside(folder: Path, name: str | Path) -> Path | None:
    """``folder / name`` if it is a file that resolves inside ``folder``, else None.

    A run folder may come from someone else: a ``../``, an absolute path or a symlink out of it must
    never copy one of the reader's own files into a page they may send on.
    """
    path = folder / name
    root = folder.resolve()
    try:
        real = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return None
    return path if real.is_relative_to(root) and real != root and real.is_file() else None


def _figures(folder: Path, view: RunView, named: list[tuple[str, str]]) -> None:
    for caption, name in named:
        if (path := inside(folder, name)) is not None:
            view.figures.append((caption, path))


def _per_class_table(per_class: dict, columns: tuple[str, ...], title: str) -> Table:
    return Table(title, ["class", *columns], [[name, *(row.get(c) for c in columns)] for name, row in per_class.items()])


def _pick(d: dict, keys: tuple[str, ...]) -> dict:
    return {k: d[k] for k in keys if d.get(k) is not None}


# ---------------------------------------------------------------- readers, one per kind of folder

def _classification(folder: Path, metrics: dict, config: dict, evaluation: bool) -> RunView:
    view = RunView(folder, "classification", f"{'Evaluation' if evaluation else 'Classification'}: "
                   f"{metrics.get('model') or config.get('model', '')} on {config.get('dataset', 'its dataset')}")
    view.headline = _pick(metrics, ("test_accuracy", "test_loss", "test_size", "best_epoch", "params",
                                    "wall_seconds", "device"))
    binary = metrics.get("binary") or {}
    view.headline.update({f"binary.{k}": v for k, v in binary.items()})
    view.config = flatten(_pinned_counts(config))
    view.history = metrics.get("history", [])
    if metrics.get("per_class"):
        view.tables.append(_per_class_table(metrics["per_class"], ("precision", "recall", "f1", "support"),
                                            "Per-class precision, recall and F1 (test split)"))
    _figures(folder, view, [("Learning curves", "curves.png"), ("Confusion matrix (test split)", "confusion_matrix.png"),
                            ("Precision-recall curve (test split)", "pr_curve.png"),
                            ("Test samples (green right, red wrong)", "samples.png"),
                            ("Misclassified test images", "misclassified.png")])
    return view


def _segmentation(folder: Path, metrics: dict, config: dict, evaluation: bool) -> RunView:
    dataset = config.get("dataset") or "a folder"
    view = RunView(folder, "segmentation", f"{'Evaluation' if evaluation else 'Segmentation'}: "
                   f"{metrics.get('model') or config.get('options', {}).get('model', '')} on {dataset}", monitor="miou")
    view.headline = _pick(metrics, ("miou", "mdice", "pixel_accuracy", "pixel_error", "dice", "iou", "split", "images",
                                    "checkpoint", "loss_name", "params", "train_seconds", "wall_seconds", "device"))
    view.config = flatten(config)
    view.history = metrics.get("history", [])
    if metrics.get("per_class"):
        view.tables.append(_per_class_table(metrics["per_class"], ("iou", "dice", "support"),
                                            f"Per-class IoU and Dice ({metrics.get('split', 'held-out')} split)"))
    _figures(folder, view, [("Learning curves", "curves.png"),
                            ("Predictions: image, true mask, predicted mask", "predictions.png")])
    return view


def _trained(folder: Path) -> RunView | None:
    """``cnnlab train`` / ``segment train`` run folders, and ``evaluate --out`` folders."""
    name = "metrics.json" if (folder / "metrics.json").is_file() else "eval_metrics.json"
    if not (folder / name).is_file():
        return None
    metrics = _json(folder / name)
    config = _json(folder / "config.json") if (folder / "config.json").is_file() else {}
    evaluation = name == "eval_metrics.json"
    if "test_accuracy" in metrics:
        return _classification(folder, metrics, config, evaluation)
    if "miou" in metrics:
        return _segmentation(folder, metrics, config, evaluation)
    if "final" in metrics and "history" in metrics:
        return _scratch_mlp(folder, metrics)
    return None


def _scratch_mlp(folder: Path, metrics: dict) -> RunView:
    cfg = metrics.get("config", {})
    view = RunView(folder, "scratch", f"NumPy MLP ({cfg.get('framework', 'numpy')}, {cfg.get('activation', '')}, "
                   f"{cfg.get('optimizer', '')})")
    view.headline = {**metrics["final"], "parameters": metrics.get("parameters"),
                     "train_seconds": metrics.get("train_seconds")}
    view.config = flatten(cfg)
    view.history = metrics["history"]
    _figures(folder, view, [("Learning curves", "curves.png")])
    return view


def _scratch_suite(folder: Path) -> RunView | None:
    if not (folder / "suite.json").is_file():
        return None
    suite = _json(folder / "suite.json")
    view = RunView(folder, "scratch", "NumPy MLP comparison (course variants b-f)")
    cols = ["variant", "description", "lr", "epochs", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
            "seconds"]
    view.tables.append(Table("Variants", cols, [[r.get(c) for c in cols] for r in suite.get("rows", [])]))
    view.headline = {f"({r['variant']}) test_accuracy": r["test_accuracy"] for r in suite.get("rows", [])}
    view.config = _pick(suite, ("epochs", "batch_size", "seed"))
    _figures(folder, view, [("Learning curves of every variant", "curves.png"), ("Training images", "grid.png")])
    return view


def _linreg(folder: Path) -> RunView | None:
    if not (folder / "linreg.json").is_file():
        return None
    data = _json(folder / "linreg.json")
    view = RunView(folder, "scratch", "Linear regression: closed form vs gradient descent")
    rows = data.get("rows", [])
    if rows:
        cols = list(rows[0])
        view.tables.append(Table("Sweeps", cols, [[r.get(c) for c in cols] for r in rows]))
    view.config = _pick(data, ("steps",))
    _figures(folder, view, [("Sweeps", "linreg.png")])
    return view


def _lab(folder: Path) -> RunView | None:
    if not (folder / "result.json").is_file():
        return None
    record = _json(folder / "result.json")
    if "lab" not in record:
        return None
    view = RunView(folder, "lab", f"Lab {record['lab']}: {record.get('title', '')}")
    view.headline = {"question": record.get("question"), "quick": record.get("quick"), "seconds": record.get("seconds")}
    view.config = flatten(record.get("settings", {}))
    if (summary := inside(folder, "summary.md")) is not None:
        view.markdown.append(summary.read_text(errors="replace"))
    else:
        view.notes += record.get("conclusion", [])
        _figures(folder, view, [("Figure", "figure.png")])
    return view


def _explain_compare(folder: Path) -> RunView | None:
    if not (folder / "compare.json").is_file():
        return None
    data = _json(folder / "compare.json")
    view = RunView(folder, "explain", f"CAM methods compared on {data.get('model', 'a model')}")
    cols = ["method", "layer", "deletion_auc", "insertion_auc", "stability", "seconds_per_image"]
    view.tables.append(Table("Faithfulness and stability (deletion lower is better; insertion and stability higher)",
                             cols, [[r.get(c) for c in cols] for r in data.get("rows", [])]))
    view.headline = {f"{r['method']} insertion_auc": r["insertion_auc"] for r in data.get("rows", [])}
    view.config = flatten({k: v for k, v in data.items() if k != "rows"})
    _figures(folder, view, [("Every method's map over each image", "compare.png")])
    return view


def _explain_overlays(folder: Path) -> RunView | None:
    """The overlays ``explain.json`` names (``cnnlab explain image`` writes it), files of this folder only."""
    if not (folder / "explain.json").is_file():
        return None
    rows = _json(folder / "explain.json")
    names = {Path(str(r.get("overlay", ""))).name for r in rows if isinstance(r, dict)} if isinstance(rows, list) else set()
    overlays = sorted(p for n in names if n.endswith(".png") and (p := inside(folder, n)) is not None)
    if not overlays:
        return None
    view = RunView(folder, "explain", "Class activation maps")
    view.figures = [(p.stem, p) for p in overlays]
    return view


def _visualize(folder: Path) -> RunView | None:
    summaries = [p for p in sorted(folder.glob("*.json"))
                 if {"trajectory", "image", "target"} <= set(d if isinstance(d := _json(p), dict) else {})]
    if not summaries:
        return None
    view = RunView(folder, "explain", "Class-model visualization")
    for path in summaries:
        s = _json(path)
        view.headline[f"{s['target']} final_probability"] = s.get("final_probability")
        _figures(folder, view, [(f"{s['target']}", Path(s["image"]).name),
                                (f"{s['target']}: score trajectory", Path(s["trajectory"]).name)])
    return view


def _attack(folder: Path) -> RunView | None:
    if (folder / "attack.json").is_file():
        data = _json(folder / "attack.json")
        view = RunView(folder, "attack", f"Adversarial examples ({data.get('method')}) on {data.get('model')}")
        cols = ["image", "clean", "clean_prob", "adversarial", "adversarial_prob", "eps", "linf", "flipped"]
        rows = data.get("rows", [])
        view.tables.append(Table("Per image", cols, [[r.get(c) for c in cols] for r in rows]))
        view.headline = {"flipped": sum(bool(r.get("flipped")) for r in rows), "images": len(rows)}
        view.config = _pick(data, ("model", "method", "target"))
        _figures(folder, view, [("Clean | adversarial | perturbation", "panels.png")])
        return view
    if (folder / "sweep.json").is_file():
        data = _json(folder / "sweep.json")
        view = RunView(folder, "attack", f"Robustness sweep of {data.get('checkpoint', 'a checkpoint')}")
        attacks = data.get("attacks", [])
        view.tables.append(Table("Accuracy vs epsilon", ["eps", *attacks],
                                 [[e, *(data[a][i] for a in attacks)] for i, e in enumerate(data.get("eps", []))]))
        flips = data.get("min_flip_eps", {})
        view.headline = {"n": data.get("n"), "median smallest flipping eps": flips.get("median_of_correct"),
                         "never flipped": flips.get("never_flipped")}
        view.config = _pick(data, ("checkpoint", "pgd_steps"))
        _figures(folder, view, [("Accuracy vs epsilon", "accuracy_vs_eps.png"),
                                ("Smallest flipping FGSM epsilon per image", "min_flip_eps.png"),
                                ("Examples, each at its smallest flipping budget", "panels.png")])
        return view
    return None


READERS: list[Callable[[Path], RunView | None]] = [
    _trained, _lab, _scratch_suite, _linreg, _explain_compare, _attack, _visualize, _explain_overlays]
KNOWN = ("metrics.json (train, segment train, scratch mlp), eval_metrics.json, result.json (lab), suite.json, "
         "linreg.json, compare.json or explain.json (explain), attack.json or sweep.json (attack), "
         "a visualize .json")


def read_run(folder: str | Path) -> RunView:
    """The view of one cnnlab output folder; a folder cnnlab did not write is one clear error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CnnlabError(f"{folder}: not a folder; give a cnnlab run folder (the --out of a cnnlab command)")
    for reader in READERS:
        view = reader(folder)
        if view is not None:
            own = [p for p in sorted(folder.glob("*.png")) if p.name != "report.png" and inside(folder, p.name)]
            shown = {p.resolve() for _, p in view.figures}
            if view.markdown:
                shown |= {p.resolve() for p in own if f"({p.name})" in "".join(view.markdown)}
            view.figures += [(p.stem.replace("_", " "), p) for p in own if p.resolve() not in shown]
            return view
    raise CnnlabError(f"{folder}: not a cnnlab run folder (none of the files cnnlab writes: {KNOWN})")
