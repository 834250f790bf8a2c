"""Darknet: one ``.cfg`` + one ``.weights`` file (NEO_REFERENCE §2.2, §2.4; edge only).

The ``[net]`` section of the ``.cfg`` gives the input size (``channels``, ``height``,
``width``); a single declared input must have the shape ``[N, channels, height, width]``.
Darknet has no input names, so names are not compared.
"""

from __future__ import annotations

from pathlib import Path

from neobuild.frameworks import _common
from neobuild.frameworks.base import AdapterBase, Findings
from neobuild.model import Model

HINT = "write the network as <name>.cfg and its weights as <name>.weights"
_WEIGHTS_HEADER = 20  # major, minor, revision (int32) + images seen (int64)


def read_net_shape(cfg_text: str) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` from the ``[net]`` section, or None."""
    section: str | None = None
    values: dict[str, str] = {}
    for raw in cfg_text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            if section in ("net", "network"):
                break
            section = line.strip("[]").strip().lower()
        elif section in ("net", "network") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    try:
        return int(values.get("channels", "3")), int(values["height"]), int(values["width"])
    except (KeyError, ValueError):
        return None


class DarknetAdapter(AdapterBase):
    """Neo's Darknet layout: one ``.cfg`` and one ``.weights``."""

    name = "darknet"
    version = "1"
    layout = "one .cfg network file and one .weights file"
    hint = HINT

    def inspect(self, export_dir: Path, model: Model, found: Findings) -> None:
        """The ``.cfg`` and ``.weights`` files, and the input shape of ``[net]``."""
        files, problems = found.files, found.problems
        cfg, more = _common.pick_one(files, (".cfg",), "Darknet network file")
        problems += more
        weights, more = _common.pick_one(files, (".weights",), "Darknet weights file")
        problems += more
        problems += _common.top_level([f for f in (cfg, weights) if f is not None])
        if weights is not None and (export_dir / weights).stat().st_size < _WEIGHTS_HEADER:
            problems.append(_common.expected_found(weights, "Darknet weights", "a too short file"))
        if cfg is not None:
            shape = read_net_shape((export_dir / cfg).read_text(errors="replace"))
            if shape is None:
                problems.append(
                    _common.expected_found(cfg, "a [net] section with height and width", "none")
                )
            elif model.inputs.form != "none":
                # Darknet inputs have no names: the one declared input takes the shape.
                names = model.inputs.names
                read = {names[0] if len(names) == 1 else "data": (None, *shape)}
                problems += _common.compare_inputs(cfg, model.inputs, read)


ADAPTER = DarknetAdapter()
