"""XGBoost: exactly one model file (NEO_REFERENCE §2.4).

Accepted: ``Booster.save_model`` output as JSON (``.json``), UBJSON (``.ubj``), or
under ``.model``/``.bin``/no extension (UBJSON since XGBoost 2.1, the legacy binary
format before). A JSON model must parse and hold a ``learner``; its trees must have
fewer than 2^31 nodes (Neo's limit). A pickle or joblib dump is not a model file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neobuild.frameworks import _common
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

JSON_SUFFIXES = (".json",)
UBJ_SUFFIXES = (".ubj",)
LEGACY_SUFFIXES = (".model", ".bin", "")
HINT = (
    "write one file with booster.save_model(output_dir / 'model.json') "
    "(for an sklearn estimator: est.get_booster().save_model(...)); not pickle/joblib"
)
#: XGBoost reads UBJSON models since this release.
_UBJ_SINCE = (1, 6)
_MAX_NODES = 2**31


class XGBoostAdapter(AdapterBase):
    """Neo's XGBoost layout: one model file (save_model writes the same bytes each time)."""

    name = "xgboost"
    version = "1"
    layout = "exactly one XGBoost model file (.json, .ubj, .model or no extension)"
    hint = HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The one model file: its format, its trees' sizes, the version that wrote it."""
        files = found.files
        if len(files) != 1:
            found.problems.append(
                _common.expected_found("export", self.layout, _common.describe_files(files))
            )
            return
        (name,) = files
        found.problems += _common.top_level(files)
        more, found.warnings = _check_file(export_dir / name, name, model)
        found.problems += more


ADAPTER = XGBoostAdapter()


def _check_file(path: Path, name: str, model: Model) -> tuple[list[str], list[str]]:
    suffix = Path(name).suffix.lower()
    with path.open("rb") as stream:
        head = stream.read(64)
    if suffix in JSON_SUFFIXES or (suffix in LEGACY_SUFFIXES and head.startswith(b'{"')):
        return _check_json(path, name, model)
    if suffix in UBJ_SUFFIXES or (suffix in LEGACY_SUFFIXES and head.startswith(b"{")):
        if not head.startswith(b"{") or b"learner" not in head:
            return [_common.expected_found(name, "a UBJSON XGBoost model", "other bytes")], []
        return [], _ubj_warnings(name, model)
    if suffix in LEGACY_SUFFIXES:
        if not head:
            return [_common.expected_found(name, "an XGBoost model", "an empty file")], []
        return [], []
    return [
        _common.expected_found(
            name,
            "an XGBoost model file (.json, .ubj, .model or no extension)",
            f"a {suffix} file",
        )
    ], []


def _check_json(path: Path, name: str, model: Model) -> tuple[list[str], list[str]]:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        return [_common.expected_found(name, "valid JSON", f"a parse error: {exc}")], []
    if not isinstance(data, dict) or not isinstance(data.get("learner"), dict):
        return [_common.expected_found(name, "an XGBoost JSON model", "no 'learner' object")], []
    problems = [
        _common.expected_found(
            f"{name}: tree {i}", "fewer than 2^31 nodes (Neo's limit)", f"{nodes} nodes"
        )
        for i, nodes in enumerate(_tree_sizes(data["learner"]))
        if nodes >= _MAX_NODES
    ]
    warnings: list[str] = []
    written = data.get("version")
    wanted = _common.major_minor(model.framework_version)
    if (
        isinstance(written, list)
        and len(written) >= 2
        and all(isinstance(v, int) for v in written)
        and wanted is not None
        and tuple(written[:2]) > wanted
    ):
        version = ".".join(str(v) for v in written)
        warnings.append(
            f"{name}: written by XGBoost {version}, newer than framework_version "
            f"{model.framework_version}; Neo's XGBoost may not read it"
        )
    return problems, warnings


def _ubj_warnings(name: str, model: Model) -> list[str]:
    wanted = _common.major_minor(model.framework_version)
    if wanted is None or wanted >= _UBJ_SINCE:
        return []
    return [
        f"{name} is UBJSON, which XGBoost reads only since 1.6 (framework_version is "
        f"{model.framework_version}); save it as .json instead"
    ]


def _tree_sizes(learner: dict[str, Any]) -> list[int]:
    booster = learner.get("gradient_booster")
    trees = booster.get("model", {}).get("trees", []) if isinstance(booster, dict) else []
    sizes = []
    for tree in trees if isinstance(trees, list) else []:
        param = tree.get("tree_param", {}) if isinstance(tree, dict) else {}
        value = str(param.get("num_nodes", "0"))
        sizes.append(int(value) if value.isdigit() else 0)
    return sizes
