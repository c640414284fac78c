"""One training run, for any task: resume, run folder, data, seed, model, fit, reload, report, files.

Classification and segmentation differ in how they load data, build the model, loaders and
engine task, and what they report; everything around that is the same and lives here, so a run
folder means the same thing whatever trained it. A task hands :func:`train` a :class:`TaskRun`:
``prepare()`` (data, seed, model, loaders, task, the checkpoint meta and config.json, before any
file is written) and ``report(model, history)`` (held-out figures from the reloaded checkpoint).
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from torch import Tensor, nn

from cnnlab.core import distributed as dist
from cnnlab.core import log
from cnnlab.core.errors import CnnlabError
from cnnlab.core.fileio import read_json, write_json
from cnnlab.report import hooks, plots
from cnnlab.runs import rundir
from cnnlab.runs.restore import restore
from cnnlab.train.config import TrainConfig
from cnnlab.train.engine import fit


@dataclass
class Prepared:
    """What a task builds for one run; ``reported`` names the checkpoint the report is made from."""

    model: nn.Module
    train_loader: Iterable
    val_loader: Iterable | None
    task: Any  # the engine's task: loss, metrics, monitor
    cfg: TrainConfig
    meta: dict  # the model's settings, stored in every checkpoint (what ``restore`` rebuilds it from)
    config: dict  # config.json: the options ``--resume`` continues with
    perturb: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None
    reported: str = "best.ckpt"


class TaskRun(Protocol):
    """A task's side of a run (see the module docstring). ``data_parallel``: under ``torchrun``
    its processes join one group and each trains on a shard of every batch (else each process
    would train the whole run alone, and rank 0 alone writes it)."""

    data_parallel: bool

    def prepare(self) -> Prepared: ...

    def report(self, model: nn.Module, history: list[dict]) -> dict: ...


def continued(out: str | Path | None, resume: bool, names: Iterable[str], given: dict,
              config: str | Path | None = None) -> dict:
    """The run's options: ``given``; with ``resume``, each of ``given`` or ``names`` left out (None)
    comes from the run's config.json, and one given otherwise is refused (``rundir.resume_options``);
    with ``config`` (a config.json to rerun), each left out comes from that file and those given win."""
    if resume and config is not None:
        raise CnnlabError("--config starts a new run from a finished run's settings; --resume continues the run "
                          "in --out with its own: give one of them")
    if config is not None:
        return rundir.rerun_options(config, {**dict.fromkeys(names), **given})
    return rundir.resume_options(out, {**dict.fromkeys(names), **given}) if resume else given


# an option that takes effect only with others: (its name, whether the resolved options let it act, why not)
Rule = tuple[str, Callable[[dict], bool], str]


def refuse_ineffective(given: dict, resolved: dict, rules: Iterable[Rule]) -> None:
    """Options the user gave (``given``: not None) that cannot take effect with the run's other
    (``resolved``) options are refused before anything is written, not silently ignored."""
    for name, acts, why in rules:
        if given.get(name) not in (None, False) and not acts(resolved):
            raise CnnlabError(f"--{name.replace('_', '-')}{_shown(given[name])}: {why}")


def _shown(value: Any) -> str:
    """' 0.5', ' 256,256' or '' for a flag (True)."""
    if value is True:
        return ""
    return " " + (",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value))


def refuse_unvalidated(job: Prepared) -> None:
    """Early stopping and ``--keep-top`` watch the validation split: a run without one (``--val-fraction 0`` and no
    val folder) would stop on the training score instead. Checked on the loaded data, before the run
    folder is made, so the advised command runs without ``--overwrite``."""
    if job.cfg.patience and job.val_loader is None:
        raise CnnlabError(f"--patience {job.cfg.patience}: early stopping watches the validation split, and this run "
                          f"has none (--val-fraction 0); give --val-fraction > 0, or leave --patience out")
    if job.cfg.keep_top and job.val_loader is None:
        raise CnnlabError(f"--keep-top {job.cfg.keep_top}: the best epochs are ranked on the validation split, and this "
                          f"run has none (--val-fraction 0); give --val-fraction > 0, or leave --keep-top out")


def pinned_files(folder: str | Path) -> dict | None:
    """The split files a run in ``folder`` pinned (config.json's ``data_files``), None where it pinned none."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    config = read_json(path, "run configuration")
    return config.get("data_files") if isinstance(config, dict) else None


def run_folder(out: str | Path | None, name: str, resume: bool, overwrite: bool) -> Path:
    """``out`` (by default ``runs/NAME-<time>``), refused now if the run would lose work: before
    any slow step, so a refused command leaves nothing behind."""
    out = Path(out) if out else Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if dist.is_main():  # rank 0 alone: the other ranks would see its new folder
        rundir.check_run_dir(out, resume, overwrite)
    return out


def train(run: TaskRun, out: Path, *, resume: bool, overwrite: bool, progress: bool, tensorboard: bool,
          started: float) -> dict:
    """Train ``run`` into ``out`` (checked by :func:`run_folder`), write metrics.json, curves.png
    and the finish hooks' files, and print the folder's path (by default a new name the user has
    not seen); returns metrics.json's dict ({} on a non-zero torchrun rank).

    The reported model is reloaded from its checkpoint, so the report scores exactly what
    ``evaluate`` and ``predict`` will load later. ``started`` is when the run's clock started
    (``time.perf_counter()``), for ``wall_seconds``.
    """
    log.ensure()
    if run.data_parallel:
        dist.init()
    job = run.prepare()
    refuse_unvalidated(job)  # the data are loaded, the run folder not yet made
    # how many processes trained, their batches and LR (config.TrainConfig.data_parallel)
    parallel = job.cfg.data_parallel(dist.world_size())
    job.config["data_parallel"] = parallel
    # rank 0 holds the folder (locked for the whole run); the other ranks only train
    with rundir.held_run_dir(out, job.config, resume, overwrite) if dist.is_main() else nullcontext(), \
            log.to_file(out / "train.log") if dist.is_main() else nullcontext():
        logger = hooks.epoch_logger(out, tensorboard) if dist.is_main() else None
        with rundir.interruptible(out):
            history = fit(job.model, job.train_loader, job.val_loader, job.task, job.cfg, out, job.meta,
                          resume=resume, progress=progress, on_epoch=logger, perturb=job.perturb)
        dist.close()
        if not dist.is_main():
            return {}
        device = job.cfg.resolved_device()
        model, _ = restore(out / job.reported, device)
        metrics = {"history": history, **run.report(model, history)}
        metrics.update(data_parallel=parallel, wall_seconds=round(time.perf_counter() - started, 2), device=str(device),
                       model=job.meta["model"], params=sum(p.numel() for p in job.model.parameters()))
        write_json(out / "metrics.json", metrics)
        plots.plot_curves(history, out / "curves.png", metric=job.task.monitor)
        hooks.finish_run(out, logger)
        print(f"run folder: {out}")  # the next commands (evaluate, predict, report) need it
        return metrics
