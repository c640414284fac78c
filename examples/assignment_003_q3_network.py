"""003 Q3: the assignment's network, layer by layer as the question writes it, for ``cnnlab summary``.

    cnnlab summary examples/assignment_003_q3_network.py:Q3Network --input 3,256,256
    python examples/assignment_003_q3_network.py          # the same table, then the totals

The question asks for the parameters, multiply-adds and receptive field of every layer on 256x256
colour images, fractional sizes rounded down (as PyTorch does). It gives no activations; they change
neither the counts nor the receptive field, so none are added. ``fc1``'s 43,264 inputs are the
256 x 13 x 13 map that ``Layer8`` leaves, so the flatten is the only layer added to the list.
"""
from __future__ import annotations

from torch import nn

LAYERS = [
    ("Layer1", lambda: nn.Conv2d(3, 32, (7, 7), stride=1, padding="same")), ("bn1", lambda: nn.BatchNorm2d(32)),
    ("Layer2", lambda: nn.Conv2d(32, 64, (5, 5), stride=2, padding="valid")), ("bn2", lambda: nn.BatchNorm2d(64)),
    ("Layer3", lambda: nn.AvgPool2d((2, 2), stride=2)),
    ("Layer4", lambda: nn.Conv2d(64, 128, (3, 3), stride=1, dilation=2, padding="valid")),
    ("bn3", lambda: nn.BatchNorm2d(128)),
    ("Layer5", lambda: nn.Conv2d(128, 128, (3, 3), stride=1, dilation=1, padding="valid")),
    ("bn4", lambda: nn.BatchNorm2d(128)),
    ("Layer6", lambda: nn.AvgPool2d((2, 2), stride=2)),
    ("Layer7", lambda: nn.Conv2d(128, 256, (3, 3), stride=1, padding="valid")), ("bn5", lambda: nn.BatchNorm2d(256)),
    ("Layer8", lambda: nn.AvgPool2d((2, 2), stride=2)),
    ("flatten", nn.Flatten),  # 256 x 13 x 13 = 43,264: fc1's in_features
    ("fc1", lambda: nn.Linear(43264, 1024)), ("fc2", lambda: nn.Linear(1024, 1024)),
    ("dropout", lambda: nn.Dropout(p=0.5)), ("fc3", lambda: nn.Linear(1024, 10)),
]


class Q3Network(nn.Sequential):
    """The network of 003 Q3, its layers named as in the question."""

    def __init__(self) -> None:
        super().__init__()
        for name, make in LAYERS:
            self.add_module(name, make())


if __name__ == "__main__":
    from cnnlab.analysis.summary import summarize

    s = summarize(Q3Network().eval(), (3, 256, 256))
    print(s.format("table"))
    print(f"total: {s.params:,} parameters, {s.macs:,} multiply-adds")
