"""The Darknet adapter (one .cfg + one .weights) and the helpers all adapters share."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import factories
import pytest

from neobuild.errors import ArtifactError
from neobuild.frameworks import _common
from neobuild.frameworks.darknet import ADAPTER, read_net_shape
from neobuild.model import Inputs, InputSpec, Model

CFG = """\
[net]
# Testing
batch=1
subdivisions=1
width=224 ; comment
height=160
channels=3

[convolutional]
filters=16
size=3

[convolutional]
filters=32
"""


def make_model(shape: tuple[int, ...] = (1, 3, 160, 224)) -> Model:
    return factories.make_model(
        "tiny-darknet",
        framework="darknet",
        export="models/darknet/export.py",
        inputs={"data": shape},
        targets=("rasp4b",),
    )


def write_export(directory: Path) -> Path:
    (directory / "tiny.cfg").write_text(CFG)
    (directory / "tiny.weights").write_bytes(struct.pack("<iiiq", 0, 2, 0, 0) + b"\0" * 64)
    return directory


def test_accepts_cfg_and_weights(tmp_path: Path) -> None:
    artifacts = ADAPTER.check(write_export(tmp_path), make_model())
    assert artifacts.files == ("tiny.cfg", "tiny.weights")


def test_reads_the_net_section() -> None:
    assert read_net_shape(CFG) == (3, 160, 224)
    assert read_net_shape("[convolutional]\nwidth=3\n") is None


def test_shape_mismatch_and_missing_weights_are_rejected(tmp_path: Path) -> None:
    write_export(tmp_path)
    (tmp_path / "tiny.weights").unlink()
    with pytest.raises(ArtifactError) as info:
        ADAPTER.check(tmp_path, make_model((1, 3, 224, 224)))
    assert info.value.problems == [
        "export: expected exactly one Darknet weights file (.weights), found none",
        "tiny.cfg: input 'data' shape: expected [1, 3, 224, 224] (from the manifest),"
        " found [?, 3, 160, 224]",
    ]


# --- _common ---------------------------------------------------------------------------


def test_scan_lists_regular_files_and_refuses_links_and_fifos(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "b.bin").write_bytes(b"b")
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "empty").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / "dirlink").symlink_to(outside)
    (tmp_path / "sub" / "filelink").symlink_to(tmp_path / "a.bin")
    os.mkfifo(tmp_path / "pipe")
    files, problems = _common.scan_export_dir(tmp_path)
    assert files == ("a.bin", "sub/deeper/b.bin")
    assert problems == [
        f"dirlink: expected a regular file, found a symlink to {str(outside)!r}"
        " (archives must not contain links; write the file itself)",
        "pipe: expected a regular file, found a FIFO",
        f"sub/filelink: expected a regular file, found a symlink to {str(tmp_path / 'a.bin')!r}"
        " (archives must not contain links; write the file itself)",
    ]


def test_scan_of_a_missing_directory(tmp_path: Path) -> None:
    assert _common.scan_export_dir(tmp_path / "nope") == (
        (),
        [f"{tmp_path / 'nope'}: expected the export directory, found no directory"],
    )


def test_compare_inputs_reports_names_order_and_shapes() -> None:
    declared = Inputs("dict", (InputSpec("a", (1, 2)), InputSpec("b", (3,))))
    assert _common.compare_inputs("f", declared, {"a": (1, 2), "b": (None,)}) == []
    assert _common.compare_inputs("f", declared, {"b": (3,), "a": (1, 2)}) == [
        "f: input order: expected ['a', 'b'] (from the manifest), found ['b', 'a']"
    ]
    assert _common.compare_inputs("f", declared, {"b": (3,), "a": (1, 2)}, ordered=False) == []
    assert _common.compare_inputs("f", declared, {"a": (1, 3), "c": None}) == [
        "f: input names: expected ['a', 'b'] (from the manifest), found ['a', 'c']",
        "f: input 'a' shape: expected [1, 2] (from the manifest), found [1, 3]",
    ]


def test_major_minor() -> None:
    assert _common.major_minor("2.0.1") == (2, 0)
    assert _common.major_minor("latest") is None
    assert _common.major_minor(None) is None
