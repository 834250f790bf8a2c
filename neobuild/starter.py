"""The commented starter neo.yaml that ``neobuild init`` writes."""

from __future__ import annotations

import os
from pathlib import Path

from neobuild.errors import UsageError

#: Where ``init`` saves ``neobuild schema``'s output, relative to neo.yaml (the modeline).
SCHEMA_PATH = ".neobuild/neo.schema.json"

STARTER = f"""\
# yaml-language-server: $schema={SCHEMA_PATH}
#
# neo.yaml: every model of this repository headed for Amazon SageMaker Neo.
# `neobuild validate` checks this file; `neobuild schema` prints its JSON Schema
# (save it and point the line above at it for offline completion in your editor).
version: 1

# Where neobuild writes archives, rendered scripts and requests (relative to this file).
build_dir: build/neo

# Sub-manifests, e.g. one per team; their paths are relative to themselves.
# include: [teams/*/neo.yaml]

# Merged under every model: mappings merge, lists and values replace.
defaults:
  timeout: 900                      # seconds an export may run
  targets: [ml_c5]                  # TargetDevice names, or {{platform: {{os, arch, accelerator}}}}
  # CreateCompilationJob settings. Without role_arn and s3_prefix (set both or neither),
  # `package` builds everything but the compilation requests, and says so.
  # compile:
  #   role_arn: arn:aws:iam::123456789012:role/NeoCompile
  #   s3_prefix: s3://my-bucket/neo
  #   region: us-east-1
  #   max_runtime: 900

models: {{}}
# Replace `models: {{}}` above with your models, for example:
#
# models:
#   resnet18:
#     framework: pytorch              # keras|mxnet|onnx|pytorch|tensorflow|tflite|xgboost|darknet
#     framework_version: "1.8"        # quoted; Neo's edge devices take PyTorch 1.7/1.8
#     export: models/resnet18/export.py:export   # def export(output_dir, inputs): ...
#     inputs:
#       input0: [1, 3, 224, 224]      # name -> static shape (NCHW for PyTorch)
#     requirements: models/resnet18/requirements.txt   # optional: export in its own venv
#     targets:
#       - ml_c5
#       - device: jetson_nano
#         compiler_options: {{gpu-code: sm_53, trt-ver: 5.0.6, cuda-ver: "10.0"}}
"""


def write_starter(path: Path) -> None:
    """Write the starter manifest to ``path``; never overwrite an existing file.

    Raises:
        UsageError: ``path`` already exists, or its directory does not.
    """
    if not path.parent.is_dir():
        raise UsageError(
            f"directory {path.parent} does not exist", hint="create it first, or pass -C DIR"
        )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError as exc:
        raise UsageError(
            f"{path} already exists; not overwriting it",
            hint="edit it, or run `neobuild init --force` to replace it with the starter",
        ) from exc
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(STARTER)
        stream.flush()
        os.fsync(stream.fileno())
