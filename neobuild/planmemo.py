"""The plan memo: ``<root>/.neobuild/planmemo``, the last plan and everything it read.

A plan over a thousand models loads the manifest, reads ``neo.lock``, fingerprints every
model and checks every output: half a second of work whose answer, when nothing changed,
is the answer of the last run. The memo keeps that answer with what it was computed from
(:mod:`neobuild.depends`: every file and directory the plan stat'ed or listed, the paths it
found missing, and the manifest's inputs). A later plan with the same arguments re-stats
those paths, and only when every one is as it was does it print the remembered answer:
about one ``stat`` per tracked file, as ``git status`` costs with its index.

The memo is a state file (``statefile.py``): written by another neobuild, another Python
or for other arguments, or failing its checksum, it is ignored. It is only written from a
trusted recording: none of the paths changed within the racy window before the plan
started (``depends.py``), so an edit within the same timestamp tick is never missed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from neobuild.depends import Deps
from neobuild.probes import inputs_hold
from neobuild.results import PlanOutput
from neobuild.statefile import StateFile

__all__ = ["MEMO", "key", "lookup", "store"]

MEMO = StateFile("planmemo", 1, "plan memo")


def key(
    manifest_path: Path, patterns: Sequence[str], shard: str | None, include_fresh: bool
) -> bytes:
    """What a remembered plan must have been asked for to answer this one."""
    return json.dumps([str(manifest_path), list(patterns), shard, include_fresh]).encode()


def lookup(root: Path, memo_key: bytes) -> PlanOutput | None:
    """The remembered plan for ``memo_key`` when nothing it read has changed; else None."""
    payload, _why = MEMO.read(root, key=memo_key)
    if payload is None:
        return None
    try:
        deps = Deps.from_data(payload["deps"])
        if deps.manifest is None or not deps.holds():
            return None
        if not inputs_hold(deps.manifest, known=deps.paths):
            return None
        return PlanOutput(
            document=payload["document"],
            text=payload["text"],
            stale_count=payload["stale_count"],
            warnings=tuple(payload["warnings"]),
            json_text=payload["json_text"],
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None  # another shape: plan from scratch


def store(root: Path, memo_key: bytes, deps: Deps, output: PlanOutput) -> bool:
    """Remember ``output`` when ``deps`` can be trusted later; whether it was written."""
    if not deps.trusted:
        return False  # an older memo stays: it is checked against its own inputs
    payload = {
        "deps": deps.to_data(),
        "document": output.document,
        "text": output.text,
        "stale_count": output.stale_count,
        "warnings": list(output.warnings),
        "json_text": output.to_json_text(),
    }
    return MEMO.write(root, payload, key=memo_key)
