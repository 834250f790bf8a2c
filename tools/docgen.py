"""Generate documentation pages from the code: the manifest reference (from the JSON
Schema), the command reference (from the typer app) and one page per framework.

``mkdocs build`` runs these through ``tools/mkdocs_hooks.py``; nothing generated is
committed, so the pages cannot fall behind the code. Every manifest key must have an
example below: a key added to the schema without one fails the docs build.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: key (relative to a model, or top-level) -> (default, example YAML)
MANIFEST_KEYS: dict[str, tuple[str, str]] = {
    "version": ("(required)", "version: 1"),
    "build_dir": ("`build/neo`", "build_dir: build/neo"),
    "include": ("none", "include: [teams/*/neo.yaml]"),
    "templates_dir": ("the built-in templates", "templates_dir: templates/neo"),
    "cache": ("no cache (or `NEOBUILD_CACHE_URL`)", "cache: {url: s3://my-bucket/neobuild-cache}"),
    "cache.url": ("(required in `cache`)", "url: s3://my-bucket/neobuild-cache"),
    "cache.read_only": ("`false`", "read_only: true"),
    "defaults": ("none", "defaults: {timeout: 900, targets: [ml_c5]}"),
    "models": ("(required)", "models:\n  resnet18: {...}"),
    "framework": ("(required, here or in `defaults`)", "framework: pytorch"),
    "framework_version": ("not sent (Neo picks)", 'framework_version: "1.8"'),
    "export": ("(required)", "export: models/resnet18/export.py:export"),
    "inputs": ("none (only XGBoost may omit them)", "inputs:\n  input0: [1, 3, 224, 224]"),
    "sources": ("the export file's directory/**", "sources: [models/resnet18/**, common/**]"),
    "requirements": (
        "none: export with neobuild's interpreter",
        "requirements: models/resnet18/requirements.txt",
    ),
    "env": ("none", 'env: {OMP_NUM_THREADS: "1"}'),
    "timeout": ("`900`", "timeout: 1800"),
    "tags": ("none", "tags: [vision, edge]"),
    "compiler_options": ("none", "compiler_options: {dtype: float32}"),
    "targets": ("(required, here or in `defaults`)", "targets: [ml_c5, jetson_nano]"),
    "targets[].device": ("—", "- device: jetson_nano"),
    "targets[].platform": ("—", "- platform: {os: LINUX, arch: ARM64}"),
    "targets[].platform.os": ("(required)", "os: LINUX"),
    "targets[].platform.arch": ("(required)", "arch: ARM64"),
    "targets[].platform.accelerator": ("none", "accelerator: NVIDIA"),
    "targets[].compiler_options": (
        "the model's",
        '- device: jetson_nano\n  compiler_options: {gpu-code: sm_53, trt-ver: 5.0.6, cuda-ver: "10.0"}',
    ),
    "compile": ("none (`compile` then refuses)", "compile:\n  region: us-east-1"),
    "compile.role_arn": (
        "(required to compile)",
        "role_arn: arn:aws:iam::123456789012:role/NeoCompile",
    ),
    "compile.s3_prefix": ("(required to compile)", "s3_prefix: s3://my-bucket/neo"),
    "compile.region": ("the AWS SDK's region", "region: us-east-1"),
    "compile.max_runtime": ("`900`", "max_runtime: 1800"),
    "compile.kms_key_id": ("none", "kms_key_id: alias/neo"),
    "compile.vpc": ("none", "vpc: {security_group_ids: [sg-0123abcd], subnets: [subnet-0123abcd]}"),
    "compile.vpc.security_group_ids": ("(required in `vpc`)", "security_group_ids: [sg-0123abcd]"),
    "compile.vpc.subnets": ("(required in `vpc`)", "subnets: [subnet-0123abcd]"),
    "compile.tags": ("none", "tags: {team: vision}"),
    "smoke": ("`false`", "smoke: true"),
    "compile_check": ("`false`", "compile_check: true"),
}


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        values = node["enum"]
        shown = ", ".join(f"`{v}`" for v in values[:8])
        return f"one of {shown}" + (f" … ({len(values)} values)" if len(values) > 8 else "")
    kinds = node.get("type")
    if kinds is None and "anyOf" in node:
        kinds = [alt.get("type") for alt in node["anyOf"]]
    if kinds is None:
        return "any JSON value"
    if isinstance(kinds, str):
        kinds = [kinds]
    words = {"object": "mapping", "array": "list", "null": "null"}
    return " or ".join(words.get(k, k) for k in kinds if k)


def _rows(node: dict[str, Any], prefix: str, rows: list[tuple[str, dict[str, Any], bool]]) -> None:
    required = set(node.get("required", []))
    for key, child in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        rows.append((path, child, key in required))
        if "properties" in child:
            _rows(child, path + ".", rows)
        items = child.get("items")
        if isinstance(items, dict):
            for alt in [items, *items.get("oneOf", []), *items.get("anyOf", [])]:
                if "properties" in alt:
                    _rows(alt, path + "[].", rows)
                    break


def _section(title: str, rows: list[tuple[str, dict[str, Any], bool]]) -> list[str]:
    out = [f"## {title}", ""]
    for path, node, required in rows:
        if path not in MANIFEST_KEYS:
            raise KeyError(f"docs: manifest key {path!r} has no example in tools/docgen.py")
        default, example = MANIFEST_KEYS[path]
        out += [
            f"### `{path}`",
            "",
            (node.get("description") or "").rstrip(".") + ".",
            "",
            f"- **type:** {_type(node)}" + (" (required)" if required else ""),
            f"- **default:** {default}",
        ]
        for extra in ("pattern", "maxLength", "minimum"):
            if extra in node:
                out.append(f"- **{extra}:** `{node[extra]}`")
        out += ["- **example:**", "", "```yaml", example, "```", ""]
    return out


def manifest_reference() -> str:
    """Every key of neo.yaml: type, default, example (from the JSON Schema)."""
    from neobuild import neo, schema

    doc = schema.json_schema()
    top: list[tuple[str, dict[str, Any], bool]] = []
    for key, node in doc["properties"].items():
        required = key in doc.get("required", [])
        top.append((key, node, required))
        if key == "cache":
            _rows(node, "cache.", top)
    model_node = doc["properties"]["models"]["additionalProperties"]
    model: list[tuple[str, dict[str, Any], bool]] = []
    _rows(model_node, "", model)
    lines = [
        "# Manifest reference",
        "",
        "<!-- generated from neobuild's JSON Schema by tools/docgen.py; do not edit -->",
        "",
        "Every key of `neo.yaml`. `neobuild schema` prints the same rules as a JSON Schema",
        "for editors; `neobuild validate` checks them with positions and did-you-mean hints.",
        "See [the manifest guide](../manifest.md) for how defaults and includes combine.",
        "",
        *_section("Top-level keys", top),
        "## Model keys",
        "",
        "Under `models.<name>` (a name of letters, digits and hyphens, starting and ending with",
        f"a letter or digit, at most {neo.MODEL_NAME_MAX} characters). `defaults` takes every",
        "model key except `export`; a model's own value wins (mappings merge, lists replace).",
        "",
        *_section("Keys of a model", model)[2:],
    ]
    return "\n".join(lines) + "\n"


def command_reference() -> str:
    """Every command, argument and option of the CLI (from the typer app)."""
    import typer.main

    from neobuild import cli

    group = typer.main.get_command(cli.app)
    lines = [
        "# Command reference",
        "",
        "<!-- generated from the CLI by tools/docgen.py; do not edit -->",
        "",
        "Results go to stdout (tables, or one `--json` document); progress, warnings and",
        "errors to stderr. Exit codes: 0 ok, 1 a build or check failed, 2 bad input,",
        "3 internal error (a crash log is written), 130 interrupted.",
        "",
        "## Global options",
        "",
        "Before the command (`-v`/`-q` also after it):",
        "",
        *_params(group.params),
        "",
    ]
    commands = getattr(group, "commands", {})
    for name in sorted(commands):
        command = commands[name]
        if command.hidden:
            continue
        lines += [f"## `neobuild {name}`", "", inspect.cleandoc(command.help or ""), ""]
        lines += [*_params(command.params), ""]
        if command.epilog:
            examples = [
                ln.strip()[2:] for ln in command.epilog.splitlines() if ln.strip().startswith("$ ")
            ]
            lines += ["Examples:", "", "```console", *(f"$ {e}" for e in examples), "```", ""]
    return "\n".join(lines) + "\n"


def _params(params: list[Any]) -> list[str]:
    rows = ["| argument or option | meaning |", "|---|---|"]
    for param in params:
        if getattr(param, "hidden", False) or param.name in ("help",):
            continue
        names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        if param.param_type_name == "argument":
            names = f"`{param.name.upper()}`" + ("…" if param.nargs == -1 else "")
        help_text = (getattr(param, "help", None) or "").replace("|", "\\|")
        rows.append(f"| {names} | {help_text} |")
    return rows


#: framework -> (example model in examples/, input form and layout)
FRAMEWORK_PAGES: dict[str, tuple[str | None, str]] = {
    "pytorch": (
        "torch-cnn",
        "A mapping of names to NCHW shapes, or a list of shapes (PyTorch takes inputs "
        "positionally: the order is the order of `forward`'s arguments).",
    ),
    "onnx": ("onnx-mlp", "A mapping of the ONNX graph's input names to NCHW shapes."),
    "tensorflow": (
        "tf-savedmodel",
        "A mapping of the SavedModel signature's input names (or a frozen graph's placeholder "
        "names) to NHWC shapes.",
    ),
    "keras": (
        "keras-cnn",
        "A mapping of the input layers' names to NCHW shapes (Neo's rule for Keras).",
    ),
    "tflite": ("tflite-mobile", "A mapping of the interpreter's input names to NHWC shapes."),
    "mxnet": ("mxnet-mlp", "A mapping of the symbol's data names to NCHW shapes."),
    "xgboost": ("xgb-classifier", "None: Neo takes no input shapes for XGBoost."),
    "darknet": (None, "A mapping with one input, `data`, NCHW."),
}


def _strip_citations(text: str) -> str:
    """Docstring text for markdown: no citations of documents outside the repository,
    reST ``literals`` as `code`."""
    return _strip_refs(text.replace("``", "`"))


def _strip_refs(text: str) -> str:
    """``text`` without citations of documents that are not in the repository."""
    text = re.sub(r"\s*\(?NEO_REFERENCE(?:\.md)?\s*§[\d.,\s§]*\)?", "", text)
    return re.sub(r"\s*\(§[\d.]+(?:,\s*§?[\d.]+)*\)", "", text)


def framework_page(framework: str) -> str:
    """One framework: export function, input form and layout, checks, the example."""
    import importlib

    from neobuild.frameworks import get_adapter

    example, inputs = FRAMEWORK_PAGES[framework]
    adapter = get_adapter(framework)
    module = importlib.import_module(type(adapter).__module__)
    checks = _strip_citations(inspect.cleandoc(module.__doc__ or ""))
    hint = getattr(module, "HINT", None)
    lines = [
        f"# {framework}",
        "",
        "<!-- generated by tools/docgen.py from the adapter and examples/; do not edit -->",
        "",
        "## What neobuild expects",
        "",
        f"The export function writes {adapter.describe_layout()} into `output_dir`.",
        "",
        "```python",
        "def export(output_dir: pathlib.Path, inputs) -> None: ...",
        "```",
        "",
        "`output_dir` is an empty directory; `inputs` is what `inputs:` declares (a mapping of",
        "name to shape, a list of shapes, or `None`). Write nothing else, and nothing into the",
        "working directory.",
        "",
        "## Inputs: form and layout",
        "",
        inputs,
        "",
        "## What is checked",
        "",
        checks,
        "",
    ]
    if hint:
        lines += [
            "When a check fails, neobuild's hint reads:",
            "",
            f"> {_strip_citations(hint)}",
            "",
        ]
    lines += _example(example, framework)
    return "\n".join(lines)


def _example(example: str | None, framework: str) -> list[str]:
    """The example's manifest entry and export function, from examples/."""
    import io

    from ruamel.yaml import YAML

    if example is None:
        return [
            "## The example",
            "",
            f"`examples/` has no {framework} model (its weights are not small enough to ship).",
            "A manifest entry looks like this:",
            "",
            "```yaml",
            f"yolo:\n  framework: {framework}\n  export: models/yolo/export.py:export",
            "  inputs: {data: [1, 3, 416, 416]}\n  targets: [jetson_nano]",
            "```",
            "",
        ]
    manifest = YAML().load((ROOT / "examples" / "neo.yaml").read_text())
    entry = manifest["models"].get(example)
    if entry is None:
        raise KeyError(f"docs: examples/neo.yaml has no model {example!r} for {framework}")
    export_rel = str(entry["export"]).split(":")[0]
    stream = io.StringIO()
    plain = YAML(typ="safe", pure=True)
    plain.default_flow_style = None
    plain.dump({example: json.loads(json.dumps(entry))}, stream)  # without the comments
    return [
        "## The example",
        "",
        "From `examples/neo.yaml`:",
        "",
        "```yaml",
        stream.getvalue().rstrip(),
        "```",
        "",
        f"`examples/{export_rel}`:",
        "",
        "```python",
        _strip_refs((ROOT / "examples" / export_rel).read_text()).rstrip(),
        "```",
        "",
    ]


def pages() -> dict[str, str]:
    """Generated page path (inside docs/) -> markdown."""
    out = {
        "reference/manifest.md": manifest_reference(),
        "reference/commands.md": command_reference(),
    }
    for framework in FRAMEWORK_PAGES:
        out[f"frameworks/{framework}.md"] = framework_page(framework)
    workflow = (ROOT / "examples" / "ci" / "github-actions.yml").read_text()
    out["examples/github-actions.md"] = (
        "# The GitHub Actions workflow\n\n"
        "`examples/ci/github-actions.yml`, as shipped (see [the CI guide](../ci.md)):\n\n"
        f"```yaml\n{workflow.rstrip()}\n```\n"
    )
    return out


if __name__ == "__main__":  # print one page: python tools/docgen.py reference/manifest.md
    import sys

    print(pages()[sys.argv[1]] if len(sys.argv) > 1 else json.dumps(sorted(pages())))
