"""A tiny hand-written CNN, traced and saved as TorchScript ``model.pth``.

Neo loads PyTorch models with ``torch.jit.load``: the export is
``torch.jit.trace(model.eval(), example)`` + ``torch.jit.save``, never ``torch.save``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

DEFAULT_INPUTS = {"input0": [1, 3, 32, 32]}

Shapes = Mapping[str, Sequence[int]] | Sequence[Sequence[int]] | None


class TinyCnn(nn.Module):
    """Two convolutions, global pooling and a linear classifier (10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def build_model() -> TinyCnn:
    """The network, with weights drawn from a fixed seed, in eval mode."""
    torch.manual_seed(0)
    return TinyCnn().eval()


def export(output_dir: Path, inputs: Shapes = None) -> None:
    """Trace the CNN with a zero input of the declared shape; write ``model.pth``."""
    given = inputs or DEFAULT_INPUTS
    shapes = list(given.values()) if isinstance(given, Mapping) else list(given)
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise ValueError(f"torch-cnn takes one NCHW image input, got {inputs!r}")
    example = torch.zeros(*shapes[0], dtype=torch.float32)
    with warnings.catch_warnings(), torch.no_grad():
        # torch 2.9+ deprecates TorchScript; it is still what Neo loads.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(build_model(), example)
        torch.jit.save(traced, str(Path(output_dir) / "model.pth"))
