"""Load neo.yaml: parse, validate (cerberus + Neo's rules), and build frozen dataclasses.

The pipeline, for the top-level file and every file its ``include`` globs name:

1. parse with ruamel's C safe loader, keeping the node tree for positions
   (``node.start_mark``) and the scalars' original text (``2.10`` stays ``2.10``);
2. check the structure with cerberus (``schema.MANIFEST_SCHEMA``), each model on its own;
3. merge ``defaults`` under each model (top-level, then the file's own; mappings merge,
   lists and scalars replace) and apply Neo's rules (``neo.py``) to the result;
4. build :class:`~neobuild.model.Manifest`. Nothing after this package sees a dict.

Every problem is collected (all at once) as a :class:`~neobuild.errors.Problem`
positioned at the place the value was written, which may be a ``defaults`` block.

A validated manifest is cached in ``<root>/.neobuild/manifestcache``, keyed by
the content of every manifest file, the include globs' results and neobuild's version;
on a hit only the files the result depends on are stat'ed again. ``sources`` globs are
expanded only on a miss (to warn about one that matches no file): on a hit, a glob
that matched nothing is expanded again and one that matched has its literal directory
prefix stat'ed, so a glob that stops matching otherwise is caught at the next manifest
change.

The package, one job a module:

- ``load``: :func:`find_manifest`, :func:`load`, :func:`check` (the entry points);
- ``parse``: one file's YAML, safely (aliases, depth, size, encoding);
- ``positions``: where a value was written (``Doc``, ``ModelSource``);
- ``diagnostics``: problems collected with positions, deduplicated and capped;
- ``schemacheck``: cerberus and the translation of its errors;
- ``repofiles``: the paths a manifest names, each answer recorded for the cache;
- ``resolve``: includes and defaults;
- ``pathfields``, ``targets``, ``inputs``, ``builder``: one model, field by field;
- ``validator``: runs the parts in order;
- ``cache``: the validated-manifest cache.
"""

from __future__ import annotations

from neobuild.manifest.cache import CACHE_FILE
from neobuild.manifest.constants import (
    DEFAULT_BUILD_DIR,
    DEFAULT_MAX_RUNTIME,
    DEFAULT_TIMEOUT,
    MANIFEST_NAME,
    MODEL_NAME_MAX,
)
from neobuild.manifest.load import check, find_manifest, load
from neobuild.model import Manifest
from neobuild.paths import RealPaths

__all__ = [
    "CACHE_FILE",
    "DEFAULT_BUILD_DIR",
    "DEFAULT_MAX_RUNTIME",
    "DEFAULT_TIMEOUT",
    "MANIFEST_NAME",
    "MODEL_NAME_MAX",
    "Manifest",
    "RealPaths",
    "check",
    "find_manifest",
    "load",
]
