"""Names and defaults of the manifest that other modules need."""

from __future__ import annotations

from neobuild import neo

MANIFEST_NAME = "neo.yaml"

DEFAULT_BUILD_DIR = "build/neo"
DEFAULT_TIMEOUT = 900
DEFAULT_MAX_RUNTIME = 900

#: A model name follows the EntityName rule (neo.MODEL_NAME_*): at most 63 characters. The
#: job name ``<model>-<target>-<8 hex>`` is cut to 63 keeping the hash (request.job_name).
MODEL_NAME_MAX = neo.MODEL_NAME_MAX
