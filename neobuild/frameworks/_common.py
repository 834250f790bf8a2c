"""Helpers every framework adapter shares: scanning an export dir, wording problems.

Adapters collect problems as plain sentences (each naming the file, what was
expected and what was found) and raise them all at once with :func:`raise_problems`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from neobuild.errors import ArtifactError
from neobuild.filekind import file_kind as _kind  # scan_export_dir's name for it
from neobuild.model import Inputs, Model

#: A shape read from a model file; ``None`` marks a dynamic (symbolic) dimension.
FoundShape = Sequence[int | None]


def scan_export_dir(export_dir: Path) -> tuple[tuple[str, ...], list[str]]:
    """List the regular files under ``export_dir``, and the entries that may not be there.

    Symlinks (to files or directories, inside or outside the directory), devices,
    sockets and FIFOs are problems: SageMaker cannot extract archives holding them
    and neobuild never follows them. So are names that neo.lock, reports and archives
    cannot carry as they are (control characters such as a newline, bytes that are not
    UTF-8, a backslash). Empty directories are ignored.

    Args:
        export_dir: the directory the export entrypoint wrote.

    Returns:
        The sorted posix paths of the regular files, relative to ``export_dir``, and
        the problems found (empty when everything is a regular file or directory).
    """
    if not export_dir.is_dir() or export_dir.is_symlink():
        return (), [f"{export_dir}: expected the export directory, found no directory"]
    files: list[str] = []
    problems: list[str] = []
    for dirpath, dirnames, filenames in os.walk(export_dir, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            rel = path.relative_to(export_dir).as_posix()
            flaw = name_problem(name)
            if flaw is not None:
                problems.append(f"{rel!r}: {flaw}")
                if name in dirnames:
                    dirnames.remove(name)  # its files are named through it: one problem
                continue
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                problems.append(
                    f"{rel}: expected a regular file, found a symlink to {os.readlink(path)!r}"
                    " (archives must not contain links; write the file itself)"
                )
            elif stat.S_ISREG(mode):
                files.append(rel)
            elif not stat.S_ISDIR(mode):
                problems.append(f"{rel}: expected a regular file, found {_kind(mode)}")
        # os.walk does not descend into symlinked directories (followlinks=False).
    return tuple(sorted(files)), problems


def name_problem(name: str) -> str | None:
    """Why a file name from an export cannot be packed and locked; None when it can."""
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in name):  # os.fsdecode's escapes
        return "expected a UTF-8 file name, found bytes that are not UTF-8 (rename it)"
    bad = next((c for c in name if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0), None)
    if bad is not None:
        return (
            f"expected a file name without control characters, found U+{ord(bad):04X} (rename it)"
        )
    if "\\" in name:
        return "expected a file name without a backslash (rename it)"
    return None


#: Problems and file names listed in one message; the rest are counted.
SHOWN = 20


def pick_one(
    files: Sequence[str], suffixes: Sequence[str], what: str
) -> tuple[str | None, list[str]]:
    """The one file whose name ends with one of ``suffixes`` (case-insensitive).

    Args:
        files: paths relative to the export dir, as from :func:`scan_export_dir`.
        suffixes: accepted endings, e.g. ``(".pt", ".pth")``.
        what: what the file is, for the message, e.g. ``"TorchScript file"``.

    Returns:
        The file (None unless exactly one matched) and the problems.
    """
    matches = [f for f in files if f.lower().endswith(tuple(s.lower() for s in suffixes))]
    if len(matches) == 1:
        return matches[0], []
    expected = f"exactly one {what} ({'/'.join(suffixes)})"
    return None, [expected_found("export", expected, describe_files(matches))]


def top_level(files: Sequence[str], what: str | None = None) -> list[str]:
    """Problems for model files that are not at the top of the export directory.

    Neo looks for the model files at the archive root; an extra directory level breaks
    compilation and deployment (NEO_REFERENCE §2.4, packaging notes).

    Args:
        files: the model files, relative to the export directory.
        what: how the message names the file (default: its base name).
    """
    return [
        expected_found(f, f"{what or f.rsplit('/', 1)[-1]} at the top of the export directory", f)
        for f in files
        if "/" in f
    ]


def expected_found(subject: str, expected: object, found: object) -> str:
    """``"<subject>: expected <expected>, found <found>"`` — the one wording of a mismatch."""
    return f"{subject}: expected {expected}, found {found}"


def describe_files(files: Sequence[str]) -> str:
    """``"none"``, ``"model.pth"`` or ``"2: a.pth, b.pth"`` for messages."""
    if not files:
        return "none"
    if len(files) == 1:
        return files[0]
    shown = ", ".join(files[:SHOWN])
    more = f" and {len(files) - SHOWN} more" if len(files) > SHOWN else ""
    return f"{len(files)}: {shown}{more}"


def format_shape(shape: FoundShape) -> str:
    """``[1, 3, 224, 224]``; dynamic dimensions print as ``?``."""
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def compare_inputs(
    subject: str,
    declared: Inputs,
    found: Mapping[str, FoundShape | None],
    *,
    ordered: bool = True,
) -> list[str]:
    """Compare the manifest's inputs with the inputs read from a model file.

    Names must match (and, with ``ordered``, come in the same order); for every
    common name whose shape is known, the ranks and the static dimensions must be
    equal (a dynamic dimension in the file accepts any declared size).

    Args:
        subject: the file the inputs were read from, for the messages.
        declared: ``Model.inputs``.
        found: input name -> shape (``None`` when the file does not record it), in
            the file's order.
        ordered: whether the order of the inputs matters.

    Returns:
        One problem per mismatch, empty when they agree.
    """
    problems: list[str] = []
    want = dict(zip(declared.names, declared.shapes, strict=True))
    missing = [n for n in want if n not in found]
    extra = [n for n in found if n not in want]
    if missing or extra:
        problems.append(
            expected_found(
                f"{subject}: input names",
                _names(list(want)) + " (from the manifest)",
                _names(list(found)),
            )
        )
    elif ordered and list(want) != list(found):
        problems.append(
            expected_found(
                f"{subject}: input order",
                _names(list(want)) + " (from the manifest)",
                _names(list(found)),
            )
        )
    for name, shape in found.items():
        if name not in want or shape is None:
            continue
        expected = want[name]
        if len(shape) != len(expected) or any(
            d is not None and d != e for d, e in zip(shape, expected, strict=False)
        ):
            problems.append(
                expected_found(
                    f"{subject}: input {name!r} shape",
                    f"{format_shape(expected)} (from the manifest)",
                    format_shape(shape),
                )
            )
    return problems


def static_inputs(found: Mapping[str, FoundShape | None]) -> dict[str, tuple[int, ...]]:
    """The shapes read from a file as :class:`Artifacts` records them: ``-1`` for dynamic.

    Inputs whose shape the file does not record are left out.
    """
    return {
        name: tuple(-1 if d is None else d for d in shape)
        for name, shape in found.items()
        if shape is not None
    }


def version_tuple(version: str, parts: int) -> tuple[int, ...]:
    """The first ``parts`` numbers of a version: ``("2.13.1", 3)`` -> ``(2, 13, 1)``.

    Each dot-separated part keeps its digits only (``"3rc1"`` reads as 31), and a part
    without digits counts as 0: a loose reading, enough to compare with Neo's versions.
    """
    numbers = []
    for part in version.split(".")[:parts]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


def major_minor(version: str | None) -> tuple[int, int] | None:
    """``"2.0.1"`` -> ``(2, 0)``; None when ``version`` does not start with ``N.N``."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match[1]), int(match[2])) if match else None


def raise_problems(
    model: Model, export_dir: Path, problems: Sequence[str], *, hint: str | None
) -> None:
    """Raise :class:`ArtifactError` carrying every problem, or return when there is none."""
    if not problems:
        return
    noun = "problem" if len(problems) == 1 else "problems"
    shown = list(problems[:SHOWN])
    if len(problems) > SHOWN:
        shown.append(f"and {len(problems) - SHOWN} more")
    raise ArtifactError(
        f"model {model.name!r} ({model.framework}): the export in {export_dir} has"
        f" {len(problems)} {noun}:\n  - " + "\n  - ".join(shown),
        problems=shown,
        hint=hint,
    )


def _names(names: Sequence[str]) -> str:
    return "[" + ", ".join(repr(n) for n in names) + "]" if names else "no inputs"
