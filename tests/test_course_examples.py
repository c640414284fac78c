"""The course's networks in examples/ (001 Sec.2a/2b, 003 Q3), counted by hand and by ``cnnlab summary``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from cnnlab.analysis.summary import summarize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(summary):
    return {layer.name: layer for layer in summary.layers}


def test_003_q3_network_counts_by_hand():
    q3 = _module("assignment_003_q3_network")
    s = summarize(q3.Q3Network().eval(), (3, 256, 256))
    rows = _rows(s)
    assert rows["Layer1"].params == 7 * 7 * 3 * 32 + 32 and rows["Layer1"].output_shape == (32, 256, 256)
    assert rows["Layer2"].output_shape == (64, 126, 126)  # floor((256 - 5) / 2) + 1
    assert rows["Layer4"].output_shape == (128, 59, 59)  # 63 - 2 * (3 - 1)
    assert rows["Layer8"].output_shape == (256, 13, 13) and 256 * 13 * 13 == 43264
    assert rows["fc1"].params == 43264 * 1024 + 1024
    # receptive field: 7, +4x1 (5x5), +1x2 (pool), +2x2x4 (dilated 3x3), +2x4, +1x4, +2x8, +1x8
    assert [s.field(rows[n])["receptive_field"][0] for n in ("Layer1", "Layer2", "Layer3", "Layer4", "Layer5",
                                                               "Layer6", "Layer7", "Layer8")] == \
        [7, 11, 13, 29, 37, 41, 57, 65]
    assert s.params == 45_937_034 and s.macs == 2_111_471_872


def test_001_sec2_report_network_and_its_flagged_arithmetic():
    sec2 = _module("assignment_001_sec2_networks")
    net = sec2.ReportNetwork()
    s = summarize(net.eval(), (3, 32, 32))
    rows = _rows(s)
    assert s.field(rows["last"])["receptive_field"] == [5, 5]  # odd kernels, stride 1: never 4x4
    assert s.field(rows["layer3"])["receptive_field"] == [5, 5]
    weights = 3 * (3 * 32) + 2 * (9 * 32 * 32) + 9 * 32 * 32 + 96 * 256
    assert weights == 52_512 and s.params == weights + 3 * 32 + 2 * 32 + 32 + 256
    assert sum(sec2.REPORT_TERMS.values()) == 7_185_408 != sec2.REPORT_TOTAL
    lines = sec2.report_checks()
    assert sum("= the weights x their output channels again" in line for line in lines) == 4
    assert any("7,185,408" in line and "52,512" in line for line in lines)


def test_001_sec2b_conv_and_locally_connected_counts():
    sec2 = _module("assignment_001_sec2_networks")
    conv = summarize(sec2.TwoConv().eval(), (3, 32, 32))
    local = summarize(sec2.ConvThenLocal().eval(), (3, 32, 32))
    assert [layer.params for layer in conv.layers if layer.params] == [448, 4640]  # the report's 5,088
    assert [layer.params for layer in local.layers if layer.params] == [448, 28 * 28 * (9 * 16 * 32 + 32)]
    assert conv.field(conv.layers[-1])["receptive_field"] == local.field(local.layers[-1])["receptive_field"] == [5, 5]


@pytest.mark.parametrize("spec", ["assignment_003_q3_network.py:Q3Network", "assignment_001_sec2_networks.py:ReportNetwork"])
def test_cnnlab_summary_reads_the_example_files(spec, capsys):
    from cnnlab.cli.main import main

    size = "3,256,256" if "q3" in spec else "3,32,32"
    assert main(["summary", str(EXAMPLES / spec), "--input", size]) in (0, None)
    out = capsys.readouterr().out
    assert ("45,937,034" if "q3" in spec else "52,960") in out
