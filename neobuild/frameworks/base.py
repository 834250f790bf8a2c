"""The plug point every framework adapter implements.

An adapter knows the files Neo expects for its framework (NEO_REFERENCE §2.4),
checks an export directory against them and against the manifest's inputs (§2.3),
and may normalise the exported files so archives are byte-reproducible. It inspects
with light readers (zipfile, json, h5py, a protobuf wire reader, tflite) and never imports the
framework itself into neobuild's process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from neobuild.model import Model, Shape


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

    def check(self, export_dir: Path, model: Model) -> Artifacts:
        """Check the export against Neo's rules and the manifest.

        Raises:
            ArtifactError: with every problem found, each naming the file, what was
                expected and what was found.
        """
        ...
