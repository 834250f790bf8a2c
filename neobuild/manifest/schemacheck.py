"""The structure check: cerberus against ``schema.py``, its errors made into problems.

Each error is translated into a message a person can act on (a did-you-mean for an
unknown key, a quoting hint for ``framework_version: 2.10``...) at the value's place.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from neobuild import neo, schema
from neobuild.manifest.diagnostics import REQUIRED_HINTS, SHOWN, Reporter, describe
from neobuild.manifest.positions import Doc, PathKey, dotted
from neobuild.suggest import did_you_mean

if TYPE_CHECKING:
    import cerberus

#: The size past which a list or mapping is checked entry by entry before cerberus sees it.
_BIG = 64

_VALIDATORS: dict[str, cerberus.Validator] = {}


def _validator(name: str) -> cerberus.Validator:
    """One cerberus Validator per schema, built once (building one is slow)."""
    import cerberus

    if name not in _VALIDATORS:
        schemas = {
            "top": schema.shallow(schema.MANIFEST_SCHEMA),
            "included": schema.shallow(schema.INCLUDED_SCHEMA),
            "model": schema.MODEL_FIELDS,
        }
        _VALIDATORS[name] = cerberus.Validator(schemas[name])
    return _VALIDATORS[name]


def _schema_for(name: str) -> dict[str, Any]:
    return {
        "top": schema.MANIFEST_SCHEMA,
        "included": schema.INCLUDED_SCHEMA,
        "model": schema.MODEL_FIELDS,
    }[name]


class SchemaChecker:
    """Runs cerberus on a document and reports each of its errors as a problem."""

    def __init__(self, out: Reporter) -> None:
        self.out = out

    def check(self, doc: Doc, base: PathKey, document: Any, kind: str) -> None:
        validator = _validator(kind)
        # cerberus sorts its error list at every error (quadratic): a long list or mapping
        # with many bad entries is cut after the first ones, the rest only counted
        document = self.trimmed(doc, base, document, _schema_for(kind))
        try:
            ok = validator.validate(document, normalize=False)
        except TypeError:  # cerberus cannot sort its errors under keys of mixed types
            ok = validator.validate(_string_keys(document), normalize=False)
        if ok:
            return
        for error, in_keys in _leaf_errors(validator._errors):
            self.problem(doc, base, error, in_keys, _schema_for(kind))

    def trimmed(self, doc: Doc, base: PathKey, document: Any, fields: Mapping[str, Any]) -> Any:
        """``document`` with each long container cut after its ``SHOWN + 1``-th bad entry.

        The entries cut are checked one by one (linear) and counted as "more problems"
        of the container's kind; the first ones still go through cerberus for messages.
        """
        if not isinstance(document, dict):
            return document
        out = dict(document)
        for key, value in document.items():
            rules = fields.get(key) if isinstance(key, str) else None
            if not isinstance(rules, dict):
                continue
            where = (*base, key)
            sub = rules.get("schema")
            types = _as_list(rules.get("type"))  # a value of another type: cerberus says so
            if isinstance(value, dict) and isinstance(sub, dict) and "dict" in types:
                out[key] = self.trimmed(doc, where, value, sub)
            elif (
                isinstance(value, list)
                and isinstance(sub, dict)
                and "list" in types
                and len(value) > _BIG
            ):
                bad = [i for i, item in enumerate(value) if not _ok(sub, item)]
                cut = _cut(bad, rules)
                if cut is not None:
                    out[key] = value[:cut]
                    self.out.count_more(doc, where, sum(1 for i in bad if i >= cut))
            elif isinstance(value, dict) and "dict" in types and len(value) > _BIG:
                keys, values = rules.get("keysrules"), rules.get("valuesrules")
                items = list(value.items())
                bad = [
                    i
                    for i, (k, v) in enumerate(items)
                    if (isinstance(keys, dict) and not _ok(keys, k))
                    or (isinstance(values, dict) and not _ok(values, v))
                ]
                cut = _cut(bad, rules)
                if cut is not None:
                    out[key] = dict(items[:cut])
                    self.out.count_more(doc, where, sum(1 for i in bad if i >= cut))
        return out

    def problem(
        self, doc: Doc, base: PathKey, error: Any, in_keys: bool, root_schema: dict[str, Any]
    ) -> None:
        from cerberus import errors as cerr

        path: PathKey = base + tuple(error.document_path)
        rules = _rules_at(root_schema, tuple(error.schema_path)[:-1])
        meta = rules.get("meta", {}) if isinstance(rules, dict) else {}
        code = error.code
        value = error.value
        name = str(path[-1]) if path else ""
        if code == cerr.UNKNOWN_FIELD.code:
            allowed = _allowed_keys(root_schema, tuple(error.schema_path))
            guess = did_you_mean(name, allowed)
            if name == "export" and path[:1] == ("defaults",):
                guess = "export is per model: move it into each model"
            self.out.report(
                doc,
                path,
                f"unknown key {name!r}",
                hint=guess or (f"allowed keys: {', '.join(allowed)}" if allowed else None),
                at="key",
            )
        elif code == cerr.REQUIRED_FIELD.code:
            parent = path[:-1]
            where = "the manifest" if not parent else dotted(parent)
            self.out.report(
                doc,
                parent,
                f"missing required key {name!r}",
                hint=REQUIRED_HINTS.get(name, f"add `{name}:` to {where}"),
                at="key",
                shown=parent,
            )
        elif code in (cerr.BAD_TYPE.code, cerr.NOT_NULLABLE.code):
            self.bad_type(doc, path, rules, value, name)
        elif code == cerr.EMPTY_NOT_ALLOWED.code:
            self.out.report(doc, path, "must not be empty")
        elif code in (cerr.MIN_LENGTH.code, cerr.MAX_LENGTH.code, cerr.REGEX_MISMATCH.code):
            self.length_or_pattern(doc, path, rules, meta, value, code, error.constraint, in_keys)
        elif code == cerr.MIN_VALUE.code:
            self.out.report(doc, path, f"must be at least {error.constraint}, got {value!r}")
        elif code == cerr.MAX_VALUE.code:
            self.out.report(doc, path, f"must be at most {error.constraint}, got {value!r}")
        elif code == cerr.UNALLOWED_VALUE.code and name == "version":
            self.out.report(
                doc,
                path,
                f"unsupported manifest version {value!r}",
                hint="this neobuild reads `version: 1`",
            )
        else:  # pragma: no cover - a rule the schema does not use
            self.out.report(doc, path, f"invalid value {value!r} ({error.rule})")

    def bad_type(self, doc: Doc, path: PathKey, rules: Any, value: Any, name: str) -> None:
        types = rules.get("type") if isinstance(rules, dict) else None
        expected = _expected(types)
        text = doc.text(path)
        hint = None
        if name == "framework_version" and isinstance(value, int | float) and text is not None:
            self.out.report(
                doc,
                path,
                f"framework_version {text} is read by YAML as the number {value!r}",
                hint=f'quote it: framework_version: "{text}"',
            )
            return
        if _as_list(types) == ["string"] and isinstance(value, int | float | bool) and text:
            hint = f'quote it: "{text}"'
        self.out.report(doc, path, f"expected {expected}, got {describe(value)}", hint=hint)

    def length_or_pattern(
        self,
        doc: Doc,
        path: PathKey,
        rules: Any,
        meta: Mapping[str, Any],
        value: Any,
        code: int,
        constraint: Any,
        in_keys: bool,
    ) -> None:
        from cerberus import errors as cerr

        at = "key" if in_keys else "value"
        rule_name = meta.get("rule")
        if rule_name is not None and isinstance(value, str):
            message = neo.field_problem(rule_name, value) or f"invalid {rule_name} {value!r}"
            self.out.report(doc, path, message, at=at)
            return
        if code == cerr.REGEX_MISMATCH.code:
            name = str(path[-2]) if len(path) > 1 else ""
            if name == "env":
                message = f"{value!r} is not a valid environment variable name"
            elif path and path[-1] == "region":
                message = f"{value!r} is not an AWS Region name like us-east-1"
            else:
                message = f"{value!r} does not match {rules.get('regex')}"
            self.out.report(doc, path, message, at=at)
            return
        types = _as_list(rules.get("type") if isinstance(rules, dict) else None)
        unit = "item" if "list" in types else "entry" if "dict" in types else "character"
        bound = "at least" if code == cerr.MIN_LENGTH.code else "at most"
        count = len(value) if hasattr(value, "__len__") else value
        self.out.report(doc, path, f"needs {bound} {constraint} {unit}(s), got {count}", at=at)


def _ok(rules: Mapping[str, Any], value: Any) -> bool:
    """Whether ``value`` passes ``rules`` (one cerberus check of one value)."""
    import cerberus

    key = id(rules)
    validator = _VALIDATORS.get(f"item:{key}")
    if validator is None:
        validator = _VALIDATORS[f"item:{key}"] = cerberus.Validator({"v": rules})
    try:
        return bool(validator.validate({"v": value}, normalize=False))
    except TypeError:
        return False
    except cerberus.SchemaError:  # rules that are not an item's: do not cut on them
        return True


def _cut(bad: list[int], rules: Mapping[str, Any]) -> int | None:
    """Where to cut a container with bad entries at ``bad`` (None: keep it whole); a
    ``maxlength`` rule still sees one entry too many."""
    if len(bad) <= SHOWN:
        return None
    return max(bad[SHOWN] + 1, int(rules.get("maxlength", 0)) + 1)


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "dict": "a mapping",
    "list": "a list",
    "number": "a number",
}


def _as_list(types: Any) -> list[str]:
    if types is None:
        return []
    return [types] if isinstance(types, str) else list(types)


def _expected(types: Any) -> str:
    words = [_TYPE_WORDS.get(t, t) for t in _as_list(types)]
    return " or ".join(words) if words else "a value"


def _leaf_errors(errors: Any, in_keys: bool = False) -> Iterator[tuple[Any, bool]]:
    """Flatten cerberus's error tree; ``in_keys`` marks errors about mapping keys."""
    for error in errors:
        if error.is_group_error:
            yield from _leaf_errors(error.child_errors, in_keys or error.rule == "keysrules")
        else:
            yield error, in_keys


def _string_keys(value: Any) -> Any:
    """``value`` with every mapping key turned into a string (``1:`` -> ``"1"``)."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def _rules_at(root: Mapping[str, Any], schema_path: tuple[Any, ...]) -> Any:
    node: Any = root
    for step in schema_path:
        if isinstance(node, Mapping) and step in node:
            node = node[step]
        else:
            return {}
    return node


def _allowed_keys(root: Mapping[str, Any], schema_path: tuple[Any, ...]) -> list[str]:
    """The keys allowed next to an unknown one; its schema_path ends at the field name."""
    fields = _rules_at(root, schema_path[:-1]) if schema_path else root
    if isinstance(fields, Mapping) and "schema" in fields:
        fields = fields["schema"]
    return [str(k) for k in fields] if isinstance(fields, Mapping) else []
