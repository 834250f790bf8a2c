"""A tiny Gluon MLP, hybridized and exported as ``mxnet-mlp-symbol.json`` +
``mxnet-mlp-0000.params`` (the layout Neo's MXNet path loads).

The Gluon blocks are named with an explicit prefix so the symbol and parameter names do
not depend on how many blocks were built before in the process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

PREFIX = "mxnet-mlp"
DEFAULT_INPUTS = {"data": [1, 3, 16, 16]}


def build_model() -> object:
    """The network, initialised from a fixed seed and hybridized."""
    import mxnet as mx
    from mxnet.gluon import nn

    mx.random.seed(0)
    net = nn.HybridSequential(prefix="mlp_")
    with net.name_scope():
        net.add(nn.Flatten())
        net.add(nn.Dense(32, activation="relu"))
        net.add(nn.Dense(10))
    net.initialize(mx.init.Xavier(), ctx=mx.cpu())
    net.hybridize()
    return net


def export(output_dir: Path, inputs: Mapping[str, Sequence[int]] | None = None) -> None:
    """Run one forward pass with the declared shape (hybridize needs it), then export."""
    import mxnet as mx

    (name, shape), *rest = (inputs or DEFAULT_INPUTS).items()
    if rest or name != "data":
        raise ValueError(f"mxnet-mlp takes one input named 'data', got {dict(inputs or {})}")
    net = build_model()
    net(mx.nd.zeros(tuple(shape)))
    net.export(str(Path(output_dir) / PREFIX), epoch=0)
