"""A tiny MLP built in torch and exported as one self-contained ``model.onnx``.

Opset 12 is the newest that ONNX 1.7, Neo's ONNX version, knows. The legacy
TorchScript-based exporter (``dynamo=False``) writes the same bytes for the same
weights, and ``external_data=False`` keeps the weights inside the file.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_INPUTS = {"input": [1, 3, 16, 16]}
OPSET = 12


def build_model() -> object:
    """The network, with weights drawn from a fixed seed, in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(3 * 16 * 16, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    ).eval()


def export(output_dir: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> None:
    """Export the MLP with the declared input name and shape to ``model.onnx``."""
    import torch

    (name, shape), *rest = (inputs or DEFAULT_INPUTS).items()
    if rest or list(shape[1:]) != [3, 16, 16]:
        raise ValueError(f"onnx-mlp takes one [N, 3, 16, 16] input, got {dict(inputs or {})}")
    example = torch.zeros(*shape, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, on purpose
        torch.onnx.export(
            build_model(),
            (example,),
            str(Path(output_dir) / "model.onnx"),
            input_names=[name],
            output_names=["output"],
            opset_version=OPSET,
            dynamo=False,
            external_data=False,
        )
