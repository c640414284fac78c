"""Name catalogs kept torch-free for the CLI equal the registries they name; one Registry type for names."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cnnlab.core.errors import CnnlabError
from cnnlab.core.names import Registry, did_you_mean


def test_dataset_catalog_equals_the_dataset_registry():
    from cnnlab.data.catalog import MASK_FORMATS, SEGMENTATION_DATASETS
    from cnnlab.data.registry import list_datasets
    from cnnlab.data.segmentation import PRESETS, read_mask

    registered = {e.name for e in list_datasets() if e.task == "segmentation"}
    assert set(SEGMENTATION_DATASETS) == registered == set(PRESETS)
    assert {e.task for e in list_datasets()} == {"classification", "segmentation"}
    with pytest.raises(CnnlabError, match="expected one of " + ", ".join(MASK_FORMATS)):
        read_mask(None, "nosuch", 2)


def test_model_catalog_equals_the_model_registry():
    from cnnlab.models import list_models
    from cnnlab.models.catalog import SEGMENTATION_MODELS

    assert set(SEGMENTATION_MODELS) == {e.name for e in list_models(tag="segmentation")}


def test_segmentation_recipe_catalog_equals_the_named_recipes():
    from cnnlab.segment.catalog import RECIPE_NAMES
    from cnnlab.segment.recipes import NAMED

    assert RECIPE_NAMES == tuple(NAMED)


def test_demo_cam_names_come_from_explains_registry():
    from cnnlab.demo.server import CAM_METHODS
    from cnnlab.explain.cam import METHODS

    assert set(CAM_METHODS) == set(METHODS) - {"shapcam"}  # the demo is interactive: no minute-long method


def test_catalogs_load_without_torch():
    code = ("import sys; import cnnlab.data.catalog, cnnlab.models.catalog, cnnlab.segment.catalog, cnnlab.core.names; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_datasets_lists_segmentation_sets_with_their_task(capsys):
    from cnnlab.cli.main import main

    assert main(["datasets"]) == 0
    rows = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert {rows[name] for name in ("camvid", "isbi2012", "dc1000", "carla")} == {"segmentation"}
    assert rows["digits"] == rows["cifar10"] == "classification"


def test_a_segmentation_dataset_is_not_loaded_as_a_classification_one(tmp_path):
    from cnnlab.data import load_dataset

    with pytest.raises(CnnlabError, match="'camvid' is a segmentation dataset: use `cnnlab segment train"):
        load_dataset("camvid", str(tmp_path))


def test_registry_suggests_close_names_and_refuses_a_name_twice():
    loads = []
    reg: Registry[int] = Registry("colour", load=lambda: loads.append(1))
    reg.register("red", 1)
    reg.register("green", 2)
    assert reg.get(" RED ") == 1 and reg.find("blue") is None and "green" in reg and loads
    assert reg.names() == ["green", "red"] and reg.entries() == [2, 1]
    with pytest.raises(CnnlabError, match=r"^unknown colour 'gren'\. Did you mean: green\? Known: green, red$"):
        reg.get("gren")
    with pytest.raises(ValueError, match="'red' is registered twice"):
        reg.register("red", 3)
    assert did_you_mean("xyz", ["red", "green"]) == ""
    assert did_you_mean("gren", ["red", "green"], show=str.upper) == " Did you mean: GREEN?"


def test_model_and_dataset_registries_share_the_error_line():
    from cnnlab.data import load_dataset
    from cnnlab.models import get_entry

    with pytest.raises(CnnlabError, match=r"unknown model 'resnt9'\. Did you mean: resnet9.*Run `cnnlab models`"):
        get_entry("resnt9")
    with pytest.raises(CnnlabError, match=r"unknown dataset 'digit'\. Did you mean: digits.*Known: "):
        load_dataset("digit")
    entry, args = get_entry("transfer:resnet18")
    assert entry.name == "transfer:" and args == ("resnet18",)


@pytest.mark.parametrize("package", ["cnnlab.data", "cnnlab.models"])
def test_every_lazy_export_resolves_to_its_module(package):
    import importlib

    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        value = getattr(pkg, name)
        assert getattr(value, "__name__", name) == name and name in dir(pkg), (package, name)
