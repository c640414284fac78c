"""Classification recipes: what `cnnlab train` uses for every option the user leaves out.

Options are layered, later layers winning: ``RUN_DEFAULTS`` and ``DEFAULT_RECIPE``, the dataset's
recipe (``RECIPES``), a named recipe (``cnnlab train --recipe NAME``: a course assignment or a
speed recipe, fixing model, optimiser, schedule, epochs, augmentation and split), then the options
the user gave. :func:`resolve_options` does the layering; :func:`train_config` picks the engine's
``TrainConfig`` fields out of the result.

A named recipe has two presets: ``gpu``, the assignment's own settings (``options``), and ``cpu``,
those settings with the changes (``cpu``) that make it train on ALL the data within 30 minutes
on a 2-core CPU: most of the course's students have no GPU. A run takes the preset of the device
it resolves to, as segmentation's recipes do; ``--preset`` forces one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cnnlab.classify.course import COURSE_RECIPES
from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import did_you_mean
from cnnlab.runs.recipe import PRESETS, TRAIN_FIELDS, device_kind, engine_config, given, layered
from cnnlab.train.config import TrainConfig
from cnnlab.core.distributed import cpu_has_native_bf16

# Default recipe per dataset: what `cnnlab train --dataset X` uses when an option is not given.
# Fashion-MNIST's is chosen for a 2-core CPU budget: with 6-8 epochs the small CNN gains more from
# seeing clean images than from augmentation (92.9% vs 91.6-92.0% test; benchmarks/results/
# fm_simple_cnn_sweep.jsonl), and from no dropout; a 16-wide first block, batch 256 and bf16
# autocast (where the CPU has it in hardware) cut an epoch from 53 s to 13 s on a 2-core Sapphire
# Rapids, 93.1% after 6 epochs (benchmarks/results/fmnist_cpu_profile.json, docs/speed.md).
RECIPES: dict[str, dict] = {
    "digits": dict(model="simple-cnn", epochs=20, batch_size=64, lr=0.05, label_smoothing=0.1),
    "fashion-mnist": dict(model="simple-cnn", model_kwargs={"first_width": 16, "dropout": 0.0}, epochs=6,
                          batch_size=256, lr=0.2, label_smoothing=0.1, augment="none", cpu_amp=cpu_has_native_bf16()),
    "mnist": dict(model="simple-cnn", epochs=6, batch_size=128, lr=0.05, label_smoothing=0.1),
    "cifar10": dict(model="resnet9", epochs=20, batch_size=256, lr=0.2, label_smoothing=0.2),
    "cifar100": dict(model="resnet9", epochs=30, batch_size=256, lr=0.2, label_smoothing=0.1),
}
DEFAULT_RECIPE = dict(model="resnet9", epochs=20, batch_size=64, lr=0.05, label_smoothing=0.1)


# run options that are not TrainConfig fields, when neither a recipe nor the user sets them:
# loss "ce" (K logits, softmax) or "bce" (two classes, one sigmoid logit); classes/subset/test_subset
# select classes and a stratified share of the training / test images; init_from starts from a checkpoint's
# weights; finetune_epochs > 0 makes a run two phases (see classify.api.train_classifier);
# target_recall picks a two-class decision threshold on validation (recall_confidence: with that one-sided
# confidence, see classify.api.threshold_for_recall); cache_features trains the head of a
# frozen transfer model on its trunk's features, computed once (classify.cache)
RUN_DEFAULTS = dict(model_kwargs={}, val_fraction=0.1, test_fraction=0.2, split_seed=42, augment=None, vflip=False,
                    loss="ce", classes=None, subset=None, test_subset=None, init_from=None, finetune_epochs=0,
                    finetune_lr=None, target_recall=None, recall_confidence=None, cache_features=False)
# every option a classification run takes (``--resume`` reads each back from config.json)
OPTIONS = frozenset({*RUN_DEFAULTS, *TRAIN_FIELDS, "model"})


@dataclass(frozen=True)
class NamedRecipe:
    """A fixed training setup by name, e.g. a course assignment reproduced in one command."""

    name: str
    dataset: str                 # what it trains on here
    description: str             # one line: what it reproduces
    assignment: str = ""         # course reference, e.g. "001 Sec.3a"
    options: dict = field(default_factory=dict)  # train_classifier options: model, epochs, lr, augment, ...
    data_note: str = ""          # where the assignment's own dataset differs from the one used here
    cpu: dict = field(default_factory=dict)  # the CPU preset: what changes from ``options`` on a CPU
    cpu_note: str = ""           # those changes in words (a smaller member of the family, ...)

    def preset(self, kind: str) -> dict:
        """The recipe's options for a ``kind`` (cpu | gpu) device. A CPU preset (a recipe with ``cpu``
        changes) also trains in bf16 where the CPU does bf16 in hardware: about half the time a step."""
        if kind == "cpu" and self.cpu:
            return layered(self.options, {"cpu_amp": cpu_has_native_bf16()}, self.cpu)
        return dict(self.options)


NAMED_RECIPES: dict[str, NamedRecipe] = {}


def register_recipe(recipe: NamedRecipe) -> NamedRecipe:
    if recipe.name in NAMED_RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    NAMED_RECIPES[recipe.name] = recipe
    return recipe


for _fields in COURSE_RECIPES:
    register_recipe(NamedRecipe(**_fields))


def get_recipe(name: str) -> NamedRecipe:
    if name not in NAMED_RECIPES:
        raise CnnlabError(f"unknown recipe {name!r}.{did_you_mean(name, NAMED_RECIPES)} "
                          f"See `cnnlab train --list-recipes`.")
    return NAMED_RECIPES[name]


def resolve_preset(recipe: str | None, preset: str | None, device: str | None) -> str | None:
    """The preset a run of named ``recipe`` takes: ``preset`` if given, else the kind of ``device``
    (``auto``: the one the run will use). None without a named recipe, which has no presets."""
    if preset is not None and preset not in PRESETS:
        raise CnnlabError(f"--preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if recipe is None:
        if preset is not None:
            raise CnnlabError(f"--preset {preset}: presets belong to named recipes (--recipe NAME; see "
                              f"--list-recipes); a dataset's own defaults are the same on every device")
        return None
    return preset or device_kind(TrainConfig(device=device or "auto").resolved_device())


def resolve_options(dataset: str | None = None, recipe: str | None = None, preset: str | None = None,
                    **options_given) -> tuple[str, dict]:
    """The dataset and every run option, layered: defaults < dataset recipe < named recipe's preset < given.

    ``options_given`` that are None count as not given; the layering and its ``model_kwargs`` rule
    are ``cnnlab.runs.recipe``'s, shared with segmentation. The preset is :func:`resolve_preset`'s.
    """
    named = get_recipe(recipe) if recipe else None
    kind = resolve_preset(recipe, preset, options_given.get("device"))
    dataset = dataset or (named.dataset if named else "digits")
    options = layered(RUN_DEFAULTS, DEFAULT_RECIPE, RECIPES.get(dataset, {}), named.preset(kind) if named else {},
                      given(options_given))
    return dataset, options


def train_config(dataset: str, recipe: str | None = None, **overrides) -> TrainConfig:
    """The engine settings of ``dataset`` (and named ``recipe``) with the given (non-None) overrides."""
    _, options = resolve_options(dataset, recipe, **overrides)
    return engine_config(options)


def decoupled_sgd(lr: float, weight_decay: float, momentum: float, batch_size: int) -> dict:
    """Engine settings (mean loss over the batch) from airbench's decoupled Nesterov-SGD hyperparameters.

    airbench states ``lr`` and ``weight_decay`` per 1024 examples of a summed loss and divides
    them by the momentum's step gain ``1 + 1 / (1 - momentum)``, so that each can be tuned without
    re-tuning the others, or the batch size (Page's "how to train your ResNet" parametrisation).
    A mean loss is ``batch_size`` times smaller than the summed one, hence the factor below; the
    weight decay comes out as ``weight_decay / lr``, whatever the batch size.
    """
    step_gain = 1024 * (1 + 1 / (1 - momentum))
    engine_lr = lr * batch_size / step_gain
    return dict(optimizer="sgd", nesterov=True, momentum=momentum, batch_size=batch_size, lr=engine_lr,
                weight_decay=weight_decay * batch_size / step_gain / engine_lr)


# airbench94 (Keller Jordan, github.com/KellerJordan/cifar10-airbench, legacy/airbench94.py) as a
# cnnlab recipe: every one of its choices is an engine/model/data option any recipe can use.
register_recipe(NamedRecipe(
    "cifar10-fast", "cifar10",
    "airbench94's method: speed-vgg with a whitening stem, 10 epochs of batch 1024, lookahead, "
    "alternating flips, flip+shift TTA (about 94% on the binary release)",
    options=dict(
        model="speed-vgg", epochs=10, **decoupled_sgd(lr=11.5, weight_decay=0.0153, momentum=0.85, batch_size=1024),
        bn_lr_scale=64.0, decay_all=True, schedule="onecycle", warmup=0.23, lr_start_factor=0.2, lr_end_factor=0.07,
        label_smoothing=0.2, average="lookahead", average_every=5, average_decay=0.95 ** 5, tta=2,
        augment="cifar-fast", val_fraction=0.0, cpu_amp=cpu_has_native_bf16()),
    data_note="trains on all 50,000 training images (no validation split), as airbench does"))
