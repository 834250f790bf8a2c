"""The plug point every framework adapter implements, and the skeleton they share.

An adapter knows the files Neo expects for its framework (NEO_REFERENCE §2.4),
checks an export directory against them and against the manifest's inputs (§2.3),
and may normalise the exported files so archives are byte-reproducible. It inspects
with light readers (zipfile, json, h5py, a protobuf wire reader, tflite) and never imports the
framework itself into neobuild's process.

:class:`Adapter` is the plug point (a Protocol). :class:`AdapterBase` is the one
implementation of its ``check``: scan the export directory, let the framework's
:meth:`~AdapterBase.inspect` add what it finds to a :class:`Findings`, raise every
problem at once, return :class:`Artifacts`. Each adapter module fills in the hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from neobuild.frameworks import _common
from neobuild.model import Model, Shape

_T = TypeVar("_T")


@dataclass(frozen=True)
class Artifacts:
    """What an adapter found in an export directory.

    ``files`` are the posix paths, relative to the export directory, that go into
    the archive (sorted; directories are expanded to their files).
    ``inputs`` are the input names and shapes read from the files, when the format
    records them. ``warnings`` are human sentences that do not fail the build.
    """

    files: tuple[str, ...]
    inputs: Mapping[str, Shape] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class Adapter(Protocol):
    """One framework's rules. Implementations live in ``neobuild/frameworks/<name>.py``."""

    #: the manifest's framework name, e.g. ``"pytorch"``
    name: str
    #: bumped whenever the checks or the normalisation change; part of fingerprints
    version: str

    def describe_layout(self) -> str:
        """One sentence naming the files Neo expects, for error hints."""
        ...

    def normalize(self, export_dir: Path) -> None:
        """Rewrite exported files in place so equal models give equal bytes (may be a no-op)."""
        ...

    def check(
        self, export_dir: Path, model: Model, *, export_checks: Mapping[str, Any] | None = None
    ) -> Artifacts:
        """Check the export against Neo's rules and the manifest.

        ``export_checks`` are checks the export process already ran on its files (see
        :attr:`Findings.export_checks`).

        Raises:
            ArtifactError: with every problem found, each naming the file, what was
                expected and what was found.
        """
        ...


@dataclass
class Findings:
    """What an adapter's :meth:`AdapterBase.inspect` collects about one export.

    ``files`` start as every regular file of the export (an adapter may drop some, e.g.
    TensorFlow's ``fingerprint.pb``); ``problems`` start with the scan's own. Problems
    fail the build; ``warnings`` and ``inputs`` end up in :class:`Artifacts`.
    """

    files: tuple[str, ...]
    problems: list[str]
    warnings: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: Checks the export process ran on its own files, by check name (``onnx.checker``):
    #: an adapter may use a result instead of running the check again.
    export_checks: Mapping[str, Any] = field(default_factory=dict)

    def pick_one(self, suffixes: tuple[str, ...], what: str) -> str | None:
        """The one file with one of ``suffixes``, at the top of the export, or None.

        Adds the problems of :func:`_common.pick_one` and :func:`_common.top_level`.
        """
        chosen, problems = _common.pick_one(self.files, suffixes, what)
        self.problems += problems
        if chosen is not None:
            self.problems += _common.top_level([chosen])
        return chosen

    def read(
        self,
        export_dir: Path,
        rel: str,
        reader: Callable[[Path], _T],
        errors: type[Exception] | tuple[type[Exception], ...],
        expected: str,
    ) -> _T | None:
        """``reader(export_dir / rel)``; on ``errors``, None and the problem "expected ..., found <error>"."""
        try:
            return reader(export_dir / rel)
        except errors as exc:
            self.problems.append(_common.expected_found(rel, expected, exc))
            return None

    def note_unused(self, keep: Sequence[str], what: str) -> None:
        """Warn about each file besides ``keep``: ``"<file>: not part of the <what>; ..."``."""
        self.warnings += [
            f"{f}: not part of the {what}; archived as is" for f in self.files if f not in keep
        ]


class AdapterBase:
    """The template of every adapter's :meth:`check`; subclasses fill in the hooks.

    Class attributes: ``name`` and ``version`` (see :class:`Adapter`), ``layout`` (what
    :meth:`describe_layout` says) and ``hint`` (what to do when the check fails).
    """

    name: str
    version: str
    layout: str
    hint: str

    def describe_layout(self) -> str:
        """One sentence naming the files Neo expects."""
        return self.layout

    def normalize(self, export_dir: Path) -> None:
        """Nothing to do unless an adapter overrides it: the exporter's bytes are stable."""

    def check(
        self, export_dir: Path, model: Model, *, export_checks: Mapping[str, Any] | None = None
    ) -> Artifacts:
        """Check the export; see :meth:`Adapter.check`.

        Raises:
            ArtifactError: with every problem found.
        """
        files, problems = _common.scan_export_dir(export_dir)
        found = Findings(files=files, problems=problems, export_checks=export_checks or {})
        self.inspect(export_dir, model, found)
        _common.raise_problems(
            model, export_dir, found.problems, hint=self.hint_for(model, found.problems)
        )
        return Artifacts(files=found.files, inputs=found.inputs, warnings=tuple(found.warnings))

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The framework's checks: add problems, warnings and inputs to ``found``."""
        raise NotImplementedError

    def hint_for(self, model: Model, problems: Sequence[str]) -> str:
        """The hint of the ArtifactError (the class's ``hint`` unless overridden)."""
        return self.hint
