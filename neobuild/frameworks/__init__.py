"""Framework adapters, one module each; :func:`get_adapter` picks one by name.

:data:`ADAPTER_VERSIONS` lets ``plan`` fingerprint a model without importing its
adapter (some import h5py or numpy); ``tests/integration/test_perf_imports.py`` checks that it
equals every module's ``ADAPTER.version``.
"""

from __future__ import annotations

import importlib

from neobuild.frameworks.base import Adapter, Artifacts

__all__ = ["ADAPTER_VERSIONS", "Adapter", "Artifacts", "adapter_version", "get_adapter"]

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

#: Each adapter's ``version`` (bump it here too when an adapter's checks change).
ADAPTER_VERSIONS: dict[str, str] = {
    "darknet": "1",
    "keras": "1",
    "mxnet": "1",
    "onnx": "1",
    "pytorch": "1",
    "tensorflow": "1",
    "tflite": "1",
    "xgboost": "1",
}


def adapter_version(framework: str) -> str:
    """The ``version`` of a framework's adapter, without importing the adapter.

    Raises:
        KeyError: no adapter for ``framework``.
    """
    return ADAPTER_VERSIONS[framework]


def get_adapter(framework: str) -> Adapter:
    """The adapter for a manifest framework name (each module exposes ``ADAPTER``)."""
    module = importlib.import_module(_MODULES[framework])
    adapter: Adapter = module.ADAPTER
    return adapter
