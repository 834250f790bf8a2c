"""Framework adapters, one module each; :func:`get_adapter` picks one by name."""

from __future__ import annotations

import importlib

from neobuild.frameworks.base import Adapter, Artifacts

__all__ = ["Adapter", "Artifacts", "get_adapter"]

_MODULES = {
    "keras": "neobuild.frameworks.keras",
    "mxnet": "neobuild.frameworks.mxnet",
    "onnx": "neobuild.frameworks.onnx",
    "pytorch": "neobuild.frameworks.pytorch",
    "tensorflow": "neobuild.frameworks.tensorflow",
    "tflite": "neobuild.frameworks.tflite",
    "xgboost": "neobuild.frameworks.xgboost",
    "darknet": "neobuild.frameworks.darknet",
}


def get_adapter(framework: str) -> Adapter:
    """The adapter for a manifest framework name (each module exposes ``ADAPTER``)."""
    module = importlib.import_module(_MODULES[framework])
    adapter: Adapter = module.ADAPTER
    return adapter
