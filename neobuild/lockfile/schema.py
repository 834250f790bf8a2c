"""The shape of ``neo.lock``: its name and version, and the cerberus schema of its content.

:data:`LOCK_SCHEMA` is data (docs/lockfile.md describes it). Cerberus is slow (about
1.5 ms per entry), so :func:`conforms_mapping` answers "is this valid?" from the same
schema data ~30x faster; cerberus (:func:`make_validator`) runs only when the answer is
no, to produce the messages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

LOCK_NAME = "neo.lock"
LOCK_VERSION = 1
FIX_HINT = "delete the entry (or the whole file) and rerun `neobuild package`"

# Patterns end with \Z: cerberus appends "$", which would also accept a trailing newline.
_SHA256 = r"sha256:[0-9a-f]{64}\Z"
# A relative posix path: not absolute, no backslash, no empty, '.' or '..' segment.
_REL_PATH = r"(?!/)(?!.*\\)(?!(.*/)?\.{1,2}(/|\Z))(?!.*//)[^\x00\n]+(?<!/)\Z"
_NAME = r"[^\s/\x00][^/\x00\n]*\Z"

_FILE_RECORD: dict[str, Any] = {
    "type": "dict",
    "schema": {
        "size": {"type": "count", "required": True, "min": 0},
        "sha256": {"type": "string", "required": True, "regex": _SHA256},
    },
}
_FILE_MAP: dict[str, Any] = {
    "type": "dict",
    "keysrules": {"type": "string", "regex": _REL_PATH},
    "valuesrules": _FILE_RECORD,
}
_STR_MAP: dict[str, Any] = {
    "type": "dict",
    "keysrules": {"type": "string", "empty": False},
    "valuesrules": {"type": "string"},
}
_OPT_STR: dict[str, Any] = {"type": "string", "nullable": True}


def _by_target(fields: dict[str, Any]) -> dict[str, Any]:
    """A mapping keyed by target key (``requests``, ``jobs``) of mappings with ``fields``."""
    return {
        "type": "dict",
        "keysrules": {"type": "string", "regex": _NAME},
        "valuesrules": {"type": "dict", "schema": fields},
    }


ENTRY_SCHEMA: dict[str, Any] = {
    "fingerprint": {"type": "string", "required": True, "empty": False},
    "framework": {"type": "string", "required": True, "empty": False},
    "framework_version": _OPT_STR,
    "exported_with": _STR_MAP,
    "files": {**_FILE_MAP, "required": True},
    "archive": {**_FILE_RECORD, "required": True},
    "archive_path": {"type": "string", "required": True, "regex": _REL_PATH},
    "outputs": _FILE_MAP,
    "requests": _by_target(
        {
            "path": {"type": "string", "required": True, "regex": _REL_PATH},
            "sha256": {"type": "string", "required": True, "regex": _SHA256},
            "job_name": {"type": "string", "required": True},
        }
    ),
    "smoke": _OPT_STR,
    "compile_check": _OPT_STR,
    "fingerprint_parts": _STR_MAP,
    "jobs": _by_target(
        {
            "name": {"type": "string", "required": True, "empty": False},
            "arn": _OPT_STR,
            "status": {"type": "string", "required": True, "empty": False},
            "output": _OPT_STR,
            "inference_image": _OPT_STR,
            "artifact_digest": _OPT_STR,
            "failure_reason": _OPT_STR,
        }
    ),
    "git_commit": _OPT_STR,
    "git_dirty": {"type": "boolean", "nullable": True},
}
"""The cerberus schema of one model's entry. Keys not ``required`` may be absent (a lock
written by an older neobuild); they read as None or empty. ``null`` is only accepted where
the field is ``nullable``."""

LOCK_SCHEMA: dict[str, Any] = {
    "lock_version": {"type": "count", "required": True, "allowed": [LOCK_VERSION]},
    "models": {
        "type": "dict",
        "required": True,
        "keysrules": {"type": "string", "regex": _NAME},
        "valuesrules": {"type": "dict", "schema": ENTRY_SCHEMA},
    },
}
"""The cerberus schema of the whole lock document."""


@functools.cache
def _validator_class() -> Any:
    import cerberus

    class LockValidator(cerberus.Validator):  # type: ignore[misc]
        # "count": an int that is not a bool (cerberus' "integer" accepts True).
        types_mapping: ClassVar[dict[str, Any]] = {
            **cerberus.Validator.types_mapping,
            "count": cerberus.TypeDefinition("count", (int,), (bool,)),
        }

    return LockValidator


def make_validator(schema: Mapping[str, Any]) -> Any:
    """A cerberus validator for ``schema`` with the ``count`` type."""
    return _validator_class()(schema)


# Cerberus needs about 1.5 ms per entry: 1.5 s to read a 1,000-model lock, too slow for
# `plan`. `_conforms` answers the same yes/no question for the rules LOCK_SCHEMA uses, from
# the same schema data, ~30x faster; cerberus still runs whenever the answer is "no", to
# produce the messages (tests check both agree on valid and broken documents).
_TYPES: dict[str, Any] = {
    "dict": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    "count": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}
KNOWN_RULES = frozenset(
    {"type", "required", "nullable", "empty", "regex", "min", "allowed"}
    | {"keysrules", "valuesrules", "schema"}
)
_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _conforms(value: Any, rules: Mapping[str, Any]) -> bool:
    """True if ``value`` satisfies one field's cerberus ``rules`` (the subset used here)."""
    if value is None:
        return bool(rules.get("nullable", False))
    if "type" in rules and not _TYPES[rules["type"]](value):
        return False
    if "empty" in rules and isinstance(value, str | dict) and len(value) == 0:
        return bool(rules["empty"])
    if "regex" in rules:
        pattern = _REGEX_CACHE.get(rules["regex"])
        if pattern is None:
            pattern = _REGEX_CACHE.setdefault(rules["regex"], re.compile(rules["regex"] + "$"))
        if not pattern.match(value):
            return False
    if "min" in rules and value < rules["min"]:
        return False
    if "allowed" in rules and value not in rules["allowed"]:
        return False
    if "keysrules" in rules and not all(_conforms(k, rules["keysrules"]) for k in value):
        return False
    if "valuesrules" in rules and not all(
        _conforms(v, rules["valuesrules"]) for v in value.values()
    ):
        return False
    return "schema" not in rules or conforms_mapping(value, rules["schema"])


def rules_used(schema: Mapping[str, Any]) -> set[str]:
    """Every cerberus rule name a schema uses (the tests check _conforms knows them all)."""
    used: set[str] = set()
    for rules in schema.values():
        used |= set(rules)
        for nested in ("keysrules", "valuesrules"):
            if nested in rules:
                used |= rules_used({"": rules[nested]})
        if "schema" in rules:
            used |= rules_used(rules["schema"])
    return used


def conforms_mapping(document: Mapping[str, Any], schema: Mapping[str, Any]) -> bool:
    """True if ``document`` satisfies a cerberus mapping ``schema`` (no unknown keys)."""
    for key, rules in schema.items():
        if key in document:
            if not _conforms(document[key], rules):
                return False
        elif rules.get("required", False):
            return False
    return all(key in schema for key in document)


def flatten_errors(
    errors: Any, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    """Cerberus' nested ``errors`` dict as (path, message) pairs, in document order."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from flatten_errors(value, (*prefix, str(key)))
    elif isinstance(errors, list):
        for item in errors:
            yield from flatten_errors(item, prefix)
    else:
        yield prefix, str(errors)
