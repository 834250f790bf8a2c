"""TensorFlow: a SavedModel or a frozen graph, inputs checked in NHWC (NEO_REFERENCE §2.3, §2.4).

Neo takes either a SavedModel (exactly one ``saved_model.pb``/``.pbtxt`` plus its
``variables/`` directory) or a frozen graph (exactly one ``.pb``/``.pbtxt``). The
graph is read without TensorFlow by :mod:`neobuild.frameworks._protowire`: the
``serving_default`` signature's inputs of a SavedModel, the ``Placeholder`` nodes of
a frozen graph. Input names in the manifest are the signature's input keys, or the
placeholder names (``name`` or ``name:0``); shapes are NHWC. An unknown dimension in
the file accepts the manifest's value; the rank and known dimensions must agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from neobuild.frameworks import _common
from neobuild.frameworks._common import FoundShape
from neobuild.frameworks._protowire import (
    TensorSig,
    WireError,
    graph_placeholders,
    load,
    saved_model_meta_graphs,
)
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

_SAVED_MODEL_NAMES = ("saved_model.pb", "saved_model.pbtxt")
#: Written by TensorFlow ≥ 2.12 next to saved_model.pb; holds a random UUID, so it
#: would make archives differ on every export, and Neo would count it as a 2nd .pb.
_FINGERPRINT = "fingerprint.pb"
#: Directories of a SavedModel that belong in the archive.
_SAVED_MODEL_DIRS = ("variables/", "assets/", "assets.extra/")
#: The newest TensorFlow version Neo documents for cloud targets (§2.1).
_NEO_TF_VERSION = "2.9"
_DEFAULT_SIGNATURE = "serving_default"

_HINT = (
    "write either a SavedModel (tf.saved_model.save(module, output_dir, signatures=...):"
    " saved_model.pb + variables/) or one frozen graph .pb, and declare the inputs in NHWC"
    " under the signature's input names (SavedModel) or the placeholder names (frozen graph)"
)


@dataclass(frozen=True)
class GraphInputs:
    """The inputs read from a TensorFlow graph file, and the TF version that wrote it."""

    inputs: dict[str, TensorSig]
    tensorflow_version: str | None = None


def read_saved_model(path: Path, signature: str = _DEFAULT_SIGNATURE) -> GraphInputs:
    """The inputs of ``signature`` in the serving meta graph of a ``saved_model.pb``/``.pbtxt``.

    Raises:
        WireError: if the file is not a SavedModel, or has no such signature.
    """
    metas = saved_model_meta_graphs(
        load(path.read_bytes(), "SavedModel", text=path.suffix == ".pbtxt")
    )
    if not metas:
        raise WireError("not a SavedModel (no meta graph)")
    meta = next((m for m in metas if "serve" in m.tags), metas[0])
    if signature not in meta.signatures:
        keys = ", ".join(repr(k) for k in sorted(meta.signatures) if not k.startswith("__"))
        raise WireError(f"no signature {signature!r} (signatures: {keys or 'none'})")
    return GraphInputs(meta.signatures[signature], meta.tensorflow_version or None)


def read_frozen_graph(path: Path) -> GraphInputs:
    """The ``Placeholder`` inputs of a frozen ``GraphDef`` (``.pb`` or ``.pbtxt``).

    Raises:
        WireError: if the file is not a GraphDef.
    """
    graph = load(path.read_bytes(), "GraphDef", text=path.suffix == ".pbtxt")
    if not graph.get("node"):
        raise WireError("not a GraphDef (no nodes)")
    return GraphInputs({p.name: p for p in graph_placeholders(graph)})


def with_layout_notes(
    problems: list[str],
    subject: str,
    model: Model,
    found: Mapping[str, FoundShape | None],
    framework: str,
) -> list[str]:
    """Add "the manifest gives NCHW, Neo wants NHWC" to shape problems where that is the cause."""
    declared = dict(zip(model.inputs.names, model.inputs.shapes, strict=True))
    noted = list(problems)
    for name, shape in found.items():
        want = declared.get(name)
        if shape is None or want is None or len(shape) < 3 or len(want) != len(shape):
            continue
        as_nchw = (shape[0], shape[-1], *shape[1:-1])
        if not all(f is None or f == w for f, w in zip(as_nchw, want, strict=True)):
            continue
        nhwc = [want[0], *want[2:], want[1]]
        prefix = f"{subject}: input {name!r} shape:"
        noted = [
            p + f"; the manifest gives NCHW, but Neo wants {framework} inputs in NHWC:"
            f" write {_common.format_shape(nhwc)}"
            if p.startswith(prefix)
            else p
            for p in noted
        ]
    return noted


def _in_saved_model_dir(path: str) -> bool:
    """True for files under a SavedModel's variables/, assets/ or assets.extra/ (at any depth)."""
    return any(f"/{d}" in f"/{path}" for d in _SAVED_MODEL_DIRS)


def _signature_key(model: Model) -> str:
    """``serving_default``, unless a target's compiler options name another (ml_eia2)."""
    for target in model.targets:
        options = target.compiler_options
        if isinstance(options, dict) and isinstance(options.get("signature_def_key"), str):
            return str(options["signature_def_key"])
    return _DEFAULT_SIGNATURE


class TensorFlowAdapter(AdapterBase):
    """Neo's TensorFlow rules: a SavedModel or one frozen graph, inputs in NHWC."""

    name = "tensorflow"
    version = "1"
    layout = (
        "a SavedModel (exactly one saved_model.pb or .pbtxt plus its variables/ directory)"
        " or one frozen graph .pb/.pbtxt, at the top of the export directory"
    )
    hint = _HINT

    def normalize(self, export_dir: Path) -> None:
        """Remove the SavedModel's ``fingerprint.pb`` (random per export, not needed by Neo)."""
        fingerprint = export_dir / _FINGERPRINT
        has_saved_model = any((export_dir / n).is_file() for n in _SAVED_MODEL_NAMES)
        if has_saved_model and fingerprint.is_file() and not fingerprint.is_symlink():
            fingerprint.unlink()

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The export's layout and its graph's inputs against the manifest."""
        files = found.files
        saved_model = any(
            f.rsplit("/", 1)[-1] in _SAVED_MODEL_NAMES or "variables/" in f for f in files
        )
        if saved_model:
            files = found.files = tuple(f for f in files if f.rsplit("/", 1)[-1] != _FINGERPRINT)
        graphs = [
            f
            for f in files
            if f.lower().endswith((".pb", ".pbtxt"))
            and not (saved_model and _in_saved_model_dir(f))
        ]
        kind = "SavedModel" if saved_model else "frozen graph"
        if len(graphs) != 1:
            found.problems.append(
                "Exactly one .pb or .pbtxt file is allowed for TensorFlow models: "
                + _common.expected_found(
                    "export",
                    "one saved_model.pb + variables/ (SavedModel) or one frozen graph .pb",
                    _common.describe_files(graphs),
                )
            )
            return
        graph = graphs[0]
        nested = "/" in graph
        if nested:
            found.problems.append(
                _common.expected_found(
                    graph,
                    f"the {kind} at the top of the export directory (Neo wants the model"
                    " files at the archive root)",
                    graph,
                )
            )
        keep = [graph]
        if saved_model and not nested:
            keep += [f for f in files if f.startswith(_SAVED_MODEL_DIRS)]
            found.problems += self._saved_model_layout(graph, files)
        if saved_model:
            signature = _signature_key(model)
            read = found.read(
                export_dir,
                graph,
                lambda path: read_saved_model(path, signature),
                WireError,
                f"a TensorFlow {kind}",
            )
        else:
            read = found.read(
                export_dir, graph, read_frozen_graph, WireError, f"a TensorFlow {kind}"
            )
        if read is not None:
            inputs = self._as_declared(read.inputs, model, frozen=not saved_model)
            shapes = {k: v.shape for k, v in inputs.items()}
            found.problems += with_layout_notes(
                _common.compare_inputs(graph, model.inputs, shapes, ordered=False),
                graph,
                model,
                shapes,
                "TensorFlow",
            )
            found.inputs = _common.static_inputs(shapes)
            found.warnings += self._version_warnings(graph, read, model)
        found.note_unused(keep, f"TensorFlow {kind}")

    @staticmethod
    def _saved_model_layout(graph: str, files: tuple[str, ...]) -> list[str]:
        problems = []
        if graph not in _SAVED_MODEL_NAMES:
            problems.append(
                _common.expected_found(
                    graph, "a SavedModel graph named saved_model.pb or saved_model.pbtxt", graph
                )
            )
        variables = [f for f in files if f.startswith("variables/")]
        if not variables:
            problems.append(
                _common.expected_found(
                    graph,
                    "a variables/ directory next to it (a SavedModel is saved_model.pb"
                    " + variables/; a graph without variables must be exported frozen)",
                    "no variables/",
                )
            )
        elif "variables/variables.index" not in variables:
            problems.append(
                _common.expected_found(
                    "variables/", "variables.index", _common.describe_files(variables)
                )
            )
        return problems

    @staticmethod
    def _as_declared(
        inputs: dict[str, TensorSig], model: Model, *, frozen: bool
    ) -> dict[str, TensorSig]:
        """Key the file's inputs as the manifest spells them (``x`` or ``x:0`` for graphs)."""
        if not frozen:
            return dict(inputs)
        declared = set(model.inputs.names)
        return {
            (f"{name}:0" if name not in declared and f"{name}:0" in declared else name): sig
            for name, sig in inputs.items()
        }

    @staticmethod
    def _version_warnings(graph: str, read: GraphInputs, model: Model) -> list[str]:
        written = read.tensorflow_version
        neo = model.framework_version or _NEO_TF_VERSION
        if not written or _common.version_tuple(written, 2) <= _common.version_tuple(neo, 2):
            return []
        return [
            f"{graph} was written by TensorFlow {written}, newer than TensorFlow {neo} that"
            " Neo compiles it with; if Neo cannot load it, export with that version"
        ]


ADAPTER = TensorFlowAdapter()
