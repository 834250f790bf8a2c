"""The structure of neo.yaml as data: the cerberus schema, and the JSON Schema made from it.

``MANIFEST_SCHEMA`` is the single source of truth. ``manifest.py`` validates with it
(cerberus), and :func:`json_schema` converts it for editors (yaml-language-server),
adding the enums from ``neo.py``. Cerberus ignores the ``meta`` rule; the converter
reads ``meta.description``, ``meta.enum`` (a name in :data:`ENUMS`, matched in any
letter case) and ``meta.json`` (extra JSON Schema keywords cerberus cannot express).
Neo's cross-field rules live in code (``neo.py``, ``manifest.py``), not here.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from neobuild import neo
from neobuild.model import FRAMEWORKS

Rules = dict[str, Any]
Schema = dict[str, Rules]

SCHEMA_ID = "https://neobuild.dev/schema/neo.yaml.json"

#: Value sets named by ``meta.enum``. Validation accepts any letter case and normalises.
ENUMS: dict[str, tuple[str, ...]] = {
    "framework": FRAMEWORKS,
    "device": neo.TARGET_DEVICES,
    "os": neo.PLATFORM_OS,
    "arch": neo.PLATFORM_ARCH,
    "accelerator": neo.PLATFORM_ACCELERATOR,
}


def _field(rule_name: str, description: str) -> Rules:
    """A string field limited like the request field ``rule_name`` (neo.FIELD_RULES)."""
    rule = neo.FIELD_RULES[rule_name]
    rules: Rules = {"type": "string", "meta": {"description": description, "rule": rule_name}}
    if rule.min_len:
        rules["minlength"] = rule.min_len
    if rule.max_len is not None:
        rules["maxlength"] = rule.max_len
    pattern = neo.python_pattern(rule)
    if pattern is not None and pattern != ".*":
        rules["regex"] = f"(?:{pattern})"
    return rules


def _enum(name: str, description: str, **rules: Any) -> Rules:
    return {"type": "string", "meta": {"description": description, "enum": name}, **rules}


_SHAPE_JSON = {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}}

PLATFORM_FIELDS: Schema = {
    "os": _enum("os", "TargetPlatform.Os", required=True),
    "arch": _enum("arch", "TargetPlatform.Arch", required=True),
    "accelerator": _enum("accelerator", "TargetPlatform.Accelerator (optional)", nullable=True),
}

TARGET_FIELDS: Schema = {
    "device": _enum("device", "a TargetDevice, e.g. ml_c5 or jetson_nano"),
    "platform": {
        "type": "dict",
        "schema": PLATFORM_FIELDS,
        "meta": {"description": "a TargetPlatform: os, arch and optional accelerator"},
    },
    "compiler_options": {
        "nullable": True,
        "meta": {"description": "CompilerOptions for this target, merged over the model's"},
    },
}

VPC_FIELDS: Schema = {
    "security_group_ids": {
        "type": "list",
        "required": True,
        "minlength": neo.SECURITY_GROUP_IDS[0],
        "maxlength": neo.SECURITY_GROUP_IDS[1],
        "schema": _field("SecurityGroupId", "a security group ID"),
    },
    "subnets": {
        "type": "list",
        "required": True,
        "minlength": neo.SUBNETS[0],
        "maxlength": neo.SUBNETS[1],
        "schema": _field("Subnet", "a subnet ID"),
    },
}

COMPILE_FIELDS: Schema = {
    "role_arn": _field("RoleArn", "the IAM role Neo assumes (RoleArn)"),
    "s3_prefix": _field("S3Uri", "where archives are uploaded and compiled models written"),
    "region": {
        "type": "string",
        "regex": r"[a-z]{2}(-[a-z]+)+-\d+",
        "meta": {"description": "the AWS Region of the jobs, e.g. us-east-1"},
    },
    "max_runtime": {
        "type": "integer",
        "min": 1,
        "meta": {"description": "StoppingCondition.MaxRuntimeInSeconds (default 900)"},
    },
    "kms_key_id": _field("KmsKeyId", "OutputConfig.KmsKeyId"),
    "vpc": {"type": "dict", "schema": VPC_FIELDS, "meta": {"description": "VpcConfig"}},
    "tags": {
        "type": "dict",
        "maxlength": neo.MAX_TAGS,
        "keysrules": _field("TagKey", "tag key"),
        "valuesrules": _field("TagValue", "tag value"),
        "meta": {"description": "tags on every compilation job (key: value)"},
    },
}

#: A model's keys. ``export`` is the only one that cannot come from ``defaults``;
#: ``framework`` and ``targets`` are required after defaults are merged (checked in code).
MODEL_FIELDS: Schema = {
    "framework": _enum("framework", "the framework the model is exported from"),
    "framework_version": {
        **_field("FrameworkVersion", 'the Neo framework version, a quoted string like "2.0"'),
    },
    "export": {
        "type": "string",
        "required": True,
        "empty": False,
        "meta": {
            "description": "the export entrypoint: path/to/file.py:function or package.module:function"
        },
    },
    "inputs": {
        "type": ["dict", "list"],
        "nullable": True,
        "meta": {
            "description": "input name -> static shape (PyTorch: also a list of shapes)",
            "json": {
                "anyOf": [
                    {"type": "object", "additionalProperties": _SHAPE_JSON},
                    {"type": "array", "items": _SHAPE_JSON},
                    {"type": "null"},
                ]
            },
        },
    },
    "sources": {
        "type": "list",
        "schema": {"type": "string", "empty": False},
        "meta": {"description": "globs of the files whose change makes the model stale"},
    },
    "requirements": {
        "type": ["string", "list"],
        "schema": {"type": "string", "empty": False},
        "meta": {
            "description": "a requirements file, or a list of specifiers: export in a venv of its own"
        },
    },
    "env": {
        "type": "dict",
        "keysrules": {"type": "string", "regex": r"[A-Za-z_][A-Za-z0-9_]*"},
        "valuesrules": {"type": "string"},
        "meta": {"description": "extra environment variables for the export (strings)"},
    },
    "timeout": {
        "type": "integer",
        "min": 1,
        "meta": {"description": "seconds the export may run (default 900)"},
    },
    "tags": {
        "type": "list",
        "schema": {"type": "string", "empty": False},
        "meta": {"description": "labels for selecting models (tag:NAME)"},
    },
    "compiler_options": {
        "nullable": True,
        "meta": {"description": "CompilerOptions for every target (a mapping; ml_inf1: a string)"},
    },
    "targets": {
        "type": "list",
        "minlength": 1,
        "schema": {
            "type": ["string", "dict"],
            "schema": TARGET_FIELDS,
            "meta": {
                "enum": "device",
                "json": {"oneOf": [{"required": ["device"]}, {"required": ["platform"]}]},
            },
        },
        "meta": {"description": "the Neo targets: a device name, {device: …} or {platform: …}"},
    },
    "compile": {
        "type": "dict",
        "schema": COMPILE_FIELDS,
        "meta": {"description": "CreateCompilationJob settings"},
    },
    "templates_dir": {
        "type": "string",
        "empty": False,
        "meta": {"description": "a directory of templates that override the built-in ones"},
    },
    "smoke": {
        "type": "boolean",
        "meta": {"description": "run the rendered handler on the export (default false)"},
    },
    "compile_check": {
        "type": "boolean",
        "meta": {
            "description": "compile the export locally with TVM/Treelite and compare its "
            "outputs (a hint, not Neo's verdict; needs neobuild[tvm]; default false)"
        },
    },
}


def _without(fields: Schema, *names: str) -> Schema:
    return {k: v for k, v in fields.items() if k not in names}


DEFAULTS_FIELDS: Schema = _without(MODEL_FIELDS, "export")

_CACHE_FIELDS: Schema = {
    "url": {
        "type": "string",
        "required": True,
        "empty": False,
        "meta": {"description": "the shared build cache: s3://bucket/prefix or a directory"},
    },
    "read_only": {"type": "boolean", "meta": {"description": "fetch but never store"}},
}

_VERSION: Rules = {
    "type": "integer",
    "allowed": [1],
    "meta": {"description": "the manifest format version"},
}
_DEFAULTS: Rules = {
    "type": "dict",
    "schema": DEFAULTS_FIELDS,
    "meta": {"description": "merged under every model (mappings merge, lists replace)"},
}


def _models(model_rules: Rules) -> Rules:
    return {
        "type": "dict",
        "required": True,
        # The name rule is checked in code (manifest.check_name, with a clearer message
        # than cerberus would give); here it only reaches the JSON Schema, from one source.
        "keysrules": {
            "type": "string",
            "meta": {
                "json": {
                    "minLength": 1,
                    "maxLength": neo.MODEL_NAME_MAX,
                    "pattern": f"^{neo.MODEL_NAME_PATTERN}$",
                }
            },
        },
        "valuesrules": model_rules,
        "meta": {"description": "model name -> model"},
    }


_MODEL: Rules = {"type": "dict", "schema": MODEL_FIELDS}

#: The top-level neo.yaml.
MANIFEST_SCHEMA: Schema = {
    "version": {**_VERSION, "required": True},
    "build_dir": {
        "type": "string",
        "empty": False,
        "meta": {"description": "where outputs go, relative to this file (default build/neo)"},
    },
    "include": {
        "type": "list",
        "schema": {"type": "string", "empty": False},
        "meta": {"description": "globs of sub-manifests, relative to this file"},
    },
    "templates_dir": MODEL_FIELDS["templates_dir"],
    "cache": {"type": "dict", "schema": _CACHE_FIELDS, "meta": {"description": "shared cache"}},
    "defaults": _DEFAULTS,
    "models": _models(_MODEL),
}

#: A file named by ``include``: its own ``defaults`` (over the top-level ones) and ``models``.
INCLUDED_SCHEMA: Schema = {
    "version": _VERSION,
    "defaults": _DEFAULTS,
    "models": _models(_MODEL),
}


def shallow(schema: Schema) -> Schema:
    """``schema`` with model entries checked only for being mappings.

    The loader validates each model on its own (one cached validator, one error list per
    model), which is faster and keeps error paths short.
    """
    out = copy.copy(schema)
    out["models"] = {
        **schema["models"],
        "keysrules": {"type": "string"},  # names: the loader's check_name says it better
        "valuesrules": {"type": "dict"},
    }
    return out


# --------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------

_JSON_TYPES = {
    "string": "string",
    "integer": "integer",
    "boolean": "boolean",
    "dict": "object",
    "list": "array",
    "number": "number",
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of neo.yaml, for ``neobuild schema`` and editors.

    Generated from :data:`MANIFEST_SCHEMA`; enums come from ``neo.py``. Enum values are
    also accepted in any letter case, as the validator does.
    """
    root = _object(MANIFEST_SCHEMA)
    root.update(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": SCHEMA_ID,
            "title": "neo.yaml",
            "description": "neobuild manifest: models headed for Amazon SageMaker Neo",
        }
    )
    return root


def _object(fields: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {name: _convert(rules) for name, rules in fields.items()},
        "additionalProperties": False,
    }
    required = [name for name, rules in fields.items() if rules.get("required")]
    if required:
        out["required"] = required
    return out


def _convert(rules: Rules) -> dict[str, Any]:
    meta: dict[str, Any] = rules.get("meta", {})
    types = rules.get("type")
    type_list = [types] if isinstance(types, str) else list(types or [])
    if len(type_list) > 1 and "string" in type_list and "dict" in type_list:
        # a string or a mapping (a target): one variant each, the enum on the string.
        string = _convert({"type": "string", "meta": {"enum": meta.get("enum")}})
        mapping = _convert(
            {
                "type": "dict",
                "schema": rules.get("schema", {}),
                "meta": {"json": meta.get("json", {})},
            }
        )
        out: dict[str, Any] = {"anyOf": [string, mapping]}
        if "description" in meta:
            out["description"] = meta["description"]
        return out

    out = {}
    if "description" in meta:
        out["description"] = meta["description"]
    json_types = [_JSON_TYPES[t] for t in type_list]
    if rules.get("nullable") and json_types:
        json_types.append("null")
    if len(json_types) == 1:
        out["type"] = json_types[0]
    elif json_types:
        out["type"] = json_types

    nested = rules.get("schema")
    if nested is not None:
        if "dict" in type_list:
            out.update(_object(nested))
            out["type"] = json_types if len(json_types) > 1 else "object"
        if "list" in type_list:
            out["items"] = _convert(nested)
    if "keysrules" in rules:
        out["propertyNames"] = _convert(rules["keysrules"])
    if "valuesrules" in rules:
        out["additionalProperties"] = _convert(rules["valuesrules"])
    if "allowed" in rules:
        out["enum"] = list(rules["allowed"])
    if "regex" in rules:
        out["pattern"] = f"^{rules['regex']}$"
    if "min" in rules:
        out["minimum"] = rules["min"]
    if "max" in rules:
        out["maximum"] = rules["max"]
    for cerberus_key, suffix in (("minlength", "min"), ("maxlength", "max")):
        if cerberus_key in rules:
            if "list" in type_list:
                out[f"{suffix}Items"] = rules[cerberus_key]
            elif "dict" in type_list:
                out[f"{suffix}Properties"] = rules[cerberus_key]
            else:
                out[f"{suffix}Length"] = rules[cerberus_key]
    if rules.get("empty") is False and "string" in type_list:
        out.setdefault("minLength", 1)
    enum_name = meta.get("enum")
    if enum_name is not None and ("string" in type_list):
        values = ENUMS[enum_name]
        variants: list[dict[str, Any]] = [{"enum": list(values)}]
        variants.append({"type": "string", "pattern": _any_case(values)})
        if rules.get("nullable"):
            variants.append({"type": "null"})
        out["anyOf"] = variants
    out.update(meta.get("json", {}))
    return out


def _any_case(values: tuple[str, ...]) -> str:
    """A pattern matching any of ``values`` in any letter case, without inline flags."""

    def one(value: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in value)

    return "^(" + "|".join(one(v) for v in values) + ")$"
