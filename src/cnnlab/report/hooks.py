"""What every training run does besides training: TensorBoard logging and its HTML report.

``train_classifier`` and ``train_segmenter`` call two functions and nothing more:
``epoch_logger`` (an ``on_epoch`` hook for the engine's ``fit``, or None) and ``finish_run``
(the end-of-run figures to TensorBoard, then ``report.html`` in the run folder).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.core.errors import CnnlabError

# figures a run writes that TensorBoard shows under IMAGES (confusion matrix, prediction panels)
TB_FIGURES = ("confusion_matrix.png", "pr_curve.png", "samples.png", "misclassified.png", "predictions.png")


class TensorBoardLogger:
    """``fit``'s ``on_epoch`` hook: every number of an epoch's history row as a TensorBoard scalar.

    ``train_loss`` becomes ``loss/train`` beside ``loss/val``, so TensorBoard draws a run's train
    and validation curves in one chart; ``lr`` and ``seconds`` (per epoch) keep their names.
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise CnnlabError("--tensorboard needs the tensorboard package: pip install 'cnnlab[tensorboard]'") from exc
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))
        self.step = 0

    @staticmethod
    def tag(key: str) -> str:
        split, _, metric = key.partition("_")
        return f"{metric}/{split}" if split in ("train", "val", "test") and metric else key

    def __call__(self, row: dict, model: nn.Module | None = None) -> None:
        self.step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(self.tag(key), value, self.step)
        self.writer.flush()

    def add_figures(self, folder: Path) -> None:
        """The run's confusion matrix and prediction panels, at the last epoch."""
        import numpy as np
        from PIL import Image

        for name in TB_FIGURES:
            if (folder / name).is_file():
                with Image.open(folder / name) as im:
                    self.writer.add_image(Path(name).stem, np.asarray(im.convert("RGB")), self.step,
                                          dataformats="HWC")

    def add_results(self, folder: Path) -> dict[str, float]:
        """The run's settings beside its test figures in TensorBoard's HPARAMS tab (``add_hparams``),
        so that runs of one ``--logdir`` compare in one table: config.json's values flattened
        (``train.lr``, ``options.augment``, ...) and metrics.json's ``test_*`` numbers (also
        scalars under ``hparam/``). Returns the figures logged."""
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        figures = {f"hparam/{k}": float(v) for k, v in metrics.items()
                   if k.startswith("test_") and _number(v) and math.isfinite(v)}
        self.writer.add_hparams(hparam_values(config), figures, run_name=".")
        self.writer.flush()
        return figures

    def close(self) -> None:
        self.writer.close()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def hparam_values(config: dict, prefix: str = "") -> dict[str, Any]:
    """``config`` flattened to the scalar values ``add_hparams`` takes: nested keys joined by dots,
    lists written as text, None left out (TensorBoard has no empty value)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(hparam_values(value, name + "."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        elif value is not None:
            flat[name] = value
    return flat


def epoch_logger(out: Path, tensorboard: bool) -> TensorBoardLogger | None:
    """A TensorBoard logger writing to ``out/tb`` when asked for."""
    return TensorBoardLogger(Path(out) / "tb") if tensorboard else None


def finish_run(out: Path, logger: TensorBoardLogger | None = None) -> Path:
    """Close the run: its figures, settings and test figures to TensorBoard, then ``out/report.html``;
    returns the report's path."""
    from cnnlab.report.html import write_report

    if logger is not None:
        logger.add_figures(Path(out))
        logger.add_results(Path(out))
        logger.close()
    return write_report([out], Path(out) / "report.html")
