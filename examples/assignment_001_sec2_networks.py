"""001 Sec.2a/2b: the report's networks, counted with ``cnnlab summary``, and the report's arithmetic checked.

    cnnlab summary examples/assignment_001_sec2_networks.py:ReportNetwork --input 3,32,32
    cnnlab summary examples/assignment_001_sec2_networks.py:TwoConv --input 3,32,32
    python examples/assignment_001_sec2_networks.py      # both tables and the checks below

The report (seed 001, Sec.2) gives no figure, only its terms. Its Sec.2a network, read from them:
three 1x1 convolutions of the 3-channel input to 32 channels (its "layer 1, three blocks"); a 3x3
convolution 32->32 after two of them ("layer 2, two blocks"); a second 3x3 after one of those
("layer 3, one block"); the three branches concatenated (96 channels) into a 1x1 convolution to 256
("the last layer"). Every kernel and channel count is the report's own; padding keeps the sizes
equal so the branches can be concatenated (neither the counts nor the receptive fields depend on
the input size). Sec.2b compares two 3x3 layers (3->16, 16->32) with the second one convolutional
or locally connected.
"""
from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.local import LocallyConnected2d

# The report's per-layer terms and its stated total (001 Sec.2a), and its Sec.2b totals
REPORT_TERMS = {"layer 1": 9_216, "layer 2": 589_824, "layer 3": 294_912, "last layer": 6_291_456}
REPORT_TOTAL = 7_274_288
REPORT_FIELDS = {"layer 1": 1, "layer 2": 3, "layer 3": 5, "last layer": 4}
REPORT_2B = {"conv": (448, 4_640), "locally connected": (448, 14_656)}


class ReportNetwork(nn.Module):
    """001 Sec.2a's network as the report's terms describe it (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.ModuleList(nn.Conv2d(3, 32, 1) for _ in range(3))
        self.layer2 = nn.ModuleList(nn.Conv2d(32, 32, 3, padding=1) for _ in range(2))
        self.layer3 = nn.Conv2d(32, 32, 3, padding=1)
        self.last = nn.Conv2d(96, 256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b, c = (conv(x) for conv in self.layer1)
        b, c = self.layer2[0](b), self.layer2[1](c)
        return self.last(torch.cat([a, b, self.layer3(c)], dim=1))


class TwoConv(nn.Sequential):
    """001 Sec.2b, first model: two 3x3 convolutions, 3->16->32."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3))


class ConvThenLocal(nn.Sequential):
    """001 Sec.2b, second model: the same with the second layer locally connected (no weight sharing)."""

    def __init__(self, image_size: int = 32) -> None:
        side = image_size - 2
        super().__init__(nn.Conv2d(3, 16, 3), nn.ReLU(), LocallyConnected2d(16, 32, 3, (side, side)))


def weights(conv: nn.Module) -> int:
    return conv.weight.numel()


def report_checks() -> list[str]:
    """Each of the report's numbers against the tool's, one line each (what a TA would mark)."""
    net = ReportNetwork()
    true = {"layer 1": sum(weights(c) for c in net.layer1), "layer 2": sum(weights(c) for c in net.layer2),
            "layer 3": weights(net.layer3), "last layer": weights(net.last)}
    out_channels = {"layer 1": 32, "layer 2": 32, "layer 3": 32, "last layer": 256}
    lines = []
    for name, term in REPORT_TERMS.items():
        verdict = "= the weights x their output channels again" if term == true[name] * out_channels[name] else "?"
        lines.append(f"2a {name}: report {term:,}, weights {true[name]:,} ({verdict})")
    lines.append(f"2a total: report states {REPORT_TOTAL:,}; its own terms sum to {sum(REPORT_TERMS.values()):,}; "
                 f"the network has {sum(true.values()):,} weights, {sum(p.numel() for p in net.parameters()):,} "
                 f"parameters with biases")
    lines.append(f"2a receptive fields: report {REPORT_FIELDS}; every kernel is odd and stride 1, so every "
                 f"field is odd: the last layer (1x1 on the concatenation) keeps the largest branch's 5x5, "
                 f"never 4x4")
    conv2 = TwoConv()[2]
    lines.append(f"2b conv: report {REPORT_2B['conv']}, tool ({sum(p.numel() for p in TwoConv()[0].parameters())}, "
                 f"{sum(p.numel() for p in conv2.parameters()):,})")
    per_position = 3 * 3 * 16 * 32 + 32
    lines.append(f"2b locally connected: report {REPORT_2B['locally connected'][1]:,} for the second layer; a "
                 f"locally connected 3x3 16->32 layer has {per_position:,} parameters per output position, and "
                 f"{REPORT_2B['locally connected'][1]:,} / {per_position:,} = "
                 f"{REPORT_2B['locally connected'][1] / per_position:.2f} is no whole number of positions")
    lines.append("2b receptive field: two stride-1 3x3 layers see 3 + (3 - 1) = 5x5 of the input, in both "
                 "models (the report says 3x3, then 7x7)")
    return lines


if __name__ == "__main__":
    from cnnlab.analysis.summary import summarize

    for model in (ReportNetwork(), TwoConv(), ConvThenLocal()):
        print(type(model).__name__)
        print(summarize(model.eval(), (3, 32, 32)).format("table").split("\nInput")[0], "\n")
    print("\n".join(report_checks()))
