"""Splitting models over CI jobs: ``--shard K/N`` and ``plan --matrix``.

Assignment is *rendezvous hashing with bounded loads*: every model ranks the N shards
by ``sha256(name, shard)`` and goes to the best-ranked shard that still has room;
models are placed in a fixed order (heaviest first, then by name), so the result
depends only on the set of names, their weights and N, never on input order or on
the run.

The trade-off, stated plainly: pure rendezvous hashing would keep a model in the
same shard even when other models come and go, but leaves shards unbalanced by
chance (with 10 models over 4 shards, one shard often gets 5). Greedy
longest-processing-time packing balances perfectly but moves many models whenever one
is added. The bounded-load variant keeps the per-model preference of rendezvous
hashing (most models stay put when the set changes; adding one model moves at most a
few), and holds every shard to ``count // N`` or one more models, or, with weights, at about
``total / N`` (plus the heaviest model) so no shard takes much more than its share.
For the same names, weights and N, every CI job computes the same split.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.errors import UsageError

if TYPE_CHECKING:
    from neobuild.plan import Plan

WEIGHTS_FILE = ".neobuild/durations.json"
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; K is 1-based.

    Raises:
        UsageError: not ``K/N`` with ``1 <= K <= N``.
    """
    match = _SHARD.match(text)
    if not match:
        raise UsageError(f"--shard {text!r} is not K/N", hint="e.g. --shard 2/4 (1-based)")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise UsageError(
            f"--shard {text}: N (the number of shards) must be at least 1",
            hint="e.g. --shard 1/4 … 4/4 to split into 4 shards, or --shard 1/1 for one",
        )
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and N", hint=f"use 1/{n} … {n}/{n}")
    return k, n


def _rank(name: str, n: int) -> list[int]:
    """Shards 1..n in this name's order of preference (highest hash first)."""
    scores = [(hashlib.sha256(f"{name}\0{k}".encode()).digest(), k) for k in range(1, n + 1)]
    return [k for _, k in sorted(scores, reverse=True)]


def assign(
    names: Sequence[str], n: int, weights: Mapping[str, float] | None = None
) -> dict[str, int]:
    """The shard (1..n) of every name.

    Args:
        names: model names (duplicates are ignored).
        n: the number of shards (>= 1).
        weights: a cost per model, e.g. its last build duration in seconds; models
            without one get the mean of the known weights. None balances by count.

    Raises:
        UsageError: ``n`` is less than 1.
    """
    if n < 1:
        raise UsageError(f"cannot split into {n} shards", hint="give N >= 1")
    unique = sorted(set(names))
    if not unique:
        return {}
    if not weights:
        return _assign_by_count(unique, n)
    known = [float(weights[x]) for x in unique if x in weights and weights[x] > 0]
    default = sum(known) / len(known) if known else 1.0
    w = {x: float(weights[x]) if weights.get(x, 0) > 0 else default for x in unique}
    cap = max(sum(w.values()) / n * 1.05, max(w.values()))
    load = dict.fromkeys(range(1, n + 1), 0.0)
    out: dict[str, int] = {}
    for name in sorted(unique, key=lambda x: (-w[x], x)):
        ranked = _rank(name, n)
        chosen = next((k for k in ranked if load[k] + w[name] <= cap + 1e-9), None)
        if chosen is None:  # everything is full: the least loaded, by preference
            chosen = min(ranked, key=lambda k: (load[k], ranked.index(k)))
        load[chosen] += w[name]
        out[name] = chosen
    return out


def _assign_by_count(unique: list[str], n: int) -> dict[str, int]:
    """Sizes are exactly ``count // n`` or one more (``count % n`` shards get one more)."""
    base, extra = divmod(len(unique), n)
    load = dict.fromkeys(range(1, n + 1), 0)
    bigger = 0
    out: dict[str, int] = {}
    for name in unique:
        for k in _rank(name, n):
            if load[k] < base or (load[k] == base and bigger < extra):
                if load[k] == base:
                    bigger += 1
                load[k] += 1
                out[name] = k
                break
    return out


def shard(
    names: Sequence[str], k: int, n: int, weights: Mapping[str, float] | None = None
) -> list[str]:
    """The names that fall in shard ``k`` of ``n`` (1-based), in input order.

    Every name lands in exactly one shard; see :func:`assign`.
    """
    if not 1 <= k <= n:
        raise UsageError(f"shard {k}/{n}: K must be between 1 and N", hint=f"use 1/{n} … {n}/{n}")
    table = assign(names, n, weights)
    seen: set[str] = set()
    out = []
    for name in names:
        if table.get(name) == k and name not in seen:
            seen.add(name)
            out.append(name)
    return out


def matrix(
    the_plan: Plan,
    n: int,
    *,
    include_fresh: bool = False,
    weights: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A GitHub Actions matrix of up to ``n`` shards of the plan's stale models.

    Returns:
        ``{"include": [{"shard": "1/3", "index": 1, "total": 3, "models": "a b",
        "count": 2}, …]}``. Shards that would be empty are left out (and the total
        shrinks to the number of models), so every job has work; with nothing to
        build, ``include`` is empty, which CI should test for before fanning out
        (GitHub rejects an empty matrix).
    """
    names = [m.name for m in the_plan.models if include_fresh or m.stale]
    total = max(1, min(n, len(names)))
    table = assign(names, total, weights)
    include = []
    for k in range(1, total + 1):
        members = [x for x in names if table[x] == k]
        if members:
            include.append(
                {
                    "shard": f"{k}/{total}",
                    "index": k,
                    "total": total,
                    "models": " ".join(members),
                    "count": len(members),
                }
            )
    return {"include": include}


def plan_shard(
    the_plan: Plan,
    k: int,
    n: int,
    *,
    include_fresh: bool = False,
    weights: Mapping[str, float] | None = None,
) -> list[str]:
    """The models of shard ``k`` of ``n`` among the plan's stale ones (all with ``include_fresh``).

    The same split as :func:`matrix` for the matrix's ``total``: a CI job given
    ``--shard`` from the matrix entry builds exactly the entry's ``models``.
    """
    names = [m.name for m in the_plan.models if include_fresh or m.stale]
    return shard(names, k, n, weights)


def load_weights(root: Path) -> dict[str, float]:
    """Per-model durations of the last run (``.neobuild/durations.json``); {} when absent or bad."""
    try:
        data = json.loads((root / WEIGHTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.get("durations", {}).items()
        if isinstance(v, int | float) and v >= 0
    }


def weights_from_junit(paths: Sequence[Path]) -> dict[str, float]:
    """Per-model durations from JUnit reports of an earlier ``package --junit`` run.

    Reads the ``<testcase classname="neobuild.package" name=MODEL time=SECONDS>`` cases
    (one report per shard may be given; the last one wins for a model). Files that are
    missing or not XML are skipped: weights only tune the balance.
    """
    import xml.etree.ElementTree as ET

    out: dict[str, float] = {}
    for path in paths:
        try:
            tree = ET.parse(path)  # a CI artifact neobuild wrote, not untrusted input
        except (OSError, ET.ParseError):
            continue
        for case in tree.iter("testcase"):
            if case.get("classname") != "neobuild.package":
                continue
            name, time = case.get("name"), case.get("time")
            try:
                seconds = float(time) if time is not None else -1.0
            except ValueError:
                continue
            if name and seconds >= 0:
                out[name] = seconds
    return out


def record_weights(root: Path, durations: Mapping[str, float]) -> None:
    """Merge build durations (seconds per model) into ``.neobuild/durations.json``, atomically."""
    from neobuild.atomic import atomic_write_text

    merged = load_weights(root)
    merged.update({k: round(float(v), 3) for k, v in durations.items()})
    path = root / WEIGHTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"version": 1, "durations": dict(sorted(merged.items()))}, indent=1)
    atomic_write_text(path, text + "\n")
