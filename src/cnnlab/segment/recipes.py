"""Segmentation recipes: what `cnnlab segment train` uses for every option the user leaves out.

Options are layered (``cnnlab.runs.recipe``): ``SEG_DEFAULTS``, the dataset's recipe for the kind
of device the run resolves to (``RECIPES[dataset]["cpu" | "gpu"]``), then the options given.
"""
from __future__ import annotations

from cnnlab.runs.recipe import TRAIN_FIELDS as ENGINE_FIELDS, layered

# What a run uses when an option is not given: these defaults, then the dataset's recipe for the
# kind of device the run resolves to (``RECIPES[dataset]["cpu" | "gpu"]``).
SEG_DEFAULTS: dict = dict(
    model="unet", model_kwargs={"width": 32}, loss=None, class_weights=None, pos_weight=None,
    focal_gamma=2.0, tversky_alpha=0.3, tversky_beta=0.7,
    size=None, crop=None, repeat=1, samples=None, focus=0.0, augment={}, eval_window=None, eval_batch_size=4,
    skips=True, select=None, threshold="val", tta="", epoch_val=True, train_eval_images=100,
    epochs=30, batch_size=8, optimizer="adamw", lr=2e-3, weight_decay=1e-2, schedule="onecycle",
)
# The CPU recipes are measured on a 2-core CPU (docs/segmentation.md: DC1000 20 x 256 crops, about
# 25 minutes, test Dice 0.67; CamVid 19.5 minutes; ISBI 2012), sized from the measured cost per
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
    # CamVid has no test split: the reported val set is never used to choose, so no per-epoch val on a CPU
    "camvid": {"cpu": dict(_CAMVID, epochs=8, batch_size=8, epoch_val=False),
               "gpu": dict(_CAMVID, epochs=100, batch_size=8)},
    "isbi2012": {"cpu": dict(_ISBI, epochs=12, batch_size=8, samples=192),
                 "gpu": dict(_ISBI, epochs=40, batch_size=16, samples=512)},
    "dc1000": {"cpu": dict(_DC1000, epochs=20, batch_size=8, samples=256),
               "gpu": dict(_DC1000, epochs=40, batch_size=16, samples=1024)},
    "carla": {"cpu": _CARLA, "gpu": _CARLA},
}
# The engine's ``tta`` is classification's flip/translate level; segmentation's own ``tta`` (flips
# applied at inference and stored in the checkpoint) is a recipe option, not an engine one.
TRAIN_FIELDS = ENGINE_FIELDS - {"tta"}
# train_segmenter's own options (not recipe or engine ones) and their defaults
RUN_DEFAULTS: dict = dict(val_fraction=0.1, test_fraction=0.2, split_seed=42, noisy_drop=0.0, noisy_warmup=0.3,
                          corrupt_fraction=0.0, corrupt_mode="shift")
# the recipe and engine options of a run (``--resume`` reads each back from config.json)
OPTIONS = frozenset({*SEG_DEFAULTS, *TRAIN_FIELDS})


def recipe(dataset: str | None, kind: str = "cpu") -> dict:
    """The options a run of ``dataset`` on a ``kind`` device starts from (before the user's)."""
    return layered(SEG_DEFAULTS, RECIPES.get((dataset or "").lower(), {}).get(kind, {}))
