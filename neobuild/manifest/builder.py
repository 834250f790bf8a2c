"""One model: its merged entry checked field by field and built into a dataclass.

Neo's rules (``neo.py``) apply to the merged result; nothing after this sees a dict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from neobuild import neo
from neobuild.manifest.constants import DEFAULT_MAX_RUNTIME, DEFAULT_TIMEOUT
from neobuild.manifest.diagnostics import REQUIRED_HINTS, Reporter
from neobuild.manifest.inputs import InputFields, is_int
from neobuild.manifest.pathfields import PathFields
from neobuild.manifest.positions import ModelSource
from neobuild.manifest.repofiles import RepoFiles
from neobuild.manifest.resolve import merged
from neobuild.manifest.targets import TargetFields, target_sub
from neobuild.model import FRAMEWORKS, CompileSettings, Model, Position, VpcConfig
from neobuild.suggest import did_you_mean


class ModelBuilder:
    """Builds each model's frozen :class:`~neobuild.model.Model` from its merged entry."""

    def __init__(self, out: Reporter, files: RepoFiles) -> None:
        self.out = out
        self.files = files
        self.path_fields = PathFields(out, files)
        self.target_fields = TargetFields(out)
        self.input_fields = InputFields(out)

    def build_model(self, src: ModelSource) -> Model | None:
        m = merged(src)
        if m is None:
            return None
        ok = True
        for key in ("framework", "targets"):
            if key not in m or m[key] is None:
                self.out.report(
                    src.doc,
                    src.path,
                    f"missing required key {key!r}",
                    hint=REQUIRED_HINTS.get(key),
                    at="key",
                )
                ok = False
        framework = self.framework(src, m.get("framework"))
        version = m.get("framework_version")
        if not isinstance(version, str) or neo.field_problem("FrameworkVersion", version):
            version = None  # reported by cerberus; skip the version tables
        export = self.path_fields.export(src, m.get("export"))
        compile_settings = self.compile_settings(m.get("compile"))
        self.partial_compile(src, m.get("compile"))
        model_options = self.target_fields.options(
            src, ("compiler_options",), m.get("compiler_options")
        )
        indexed, targets_ok = self.target_fields.targets(src, m.get("targets"), model_options)
        targets = tuple(target for _, target in indexed)
        if framework is not None:
            region = compile_settings.region
            for i, target in indexed:
                for severity, message in neo.target_problems(
                    framework, version, target, region=region
                ):
                    sub = target_sub(m, i, message)
                    self.out.report_model(src, sub, message, severity=severity)
        inputs = self.input_fields.inputs(src, framework, version, targets, m)
        sources = self.path_fields.sources(src, m.get("sources"), export)
        requirements, requirements_file = self.path_fields.requirements(src, m.get("requirements"))
        templates_dir = self.path_fields.templates_dir(src, m.get("templates_dir"))
        if not ok or not targets_ok or framework is None or export is None or inputs is None:
            return None
        raw_env, raw_tags, timeout = m.get("env"), m.get("tags"), m.get("timeout")
        env: dict[Any, Any] = raw_env if isinstance(raw_env, dict) else {}
        tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
        line, col = src.doc.position(src.path, at="key")
        return Model(
            name=src.name,
            framework=framework,
            export=export,
            inputs=inputs,
            targets=targets,
            framework_version=version,
            sources=sources,
            requirements=requirements,
            requirements_file=requirements_file,
            env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
            timeout=timeout if isinstance(timeout, int) and is_int(timeout) else DEFAULT_TIMEOUT,
            tags=tuple(str(t) for t in tags),
            compiler_options=model_options,
            compile=compile_settings,
            templates_dir=templates_dir,
            smoke=m.get("smoke") is True,
            compile_check=m.get("compile_check") is True,
            position=Position(src.doc.path, line, col),
        )

    def framework(self, src: ModelSource, value: Any) -> str | None:
        if not isinstance(value, str):
            return None
        normal = value.lower()
        if normal in FRAMEWORKS:
            return normal
        self.out.report_model(
            src,
            ("framework",),
            f"unknown framework {value!r}",
            hint=did_you_mean(value, FRAMEWORKS) or f"one of: {', '.join(FRAMEWORKS)}",
        )
        return None

    def partial_compile(self, src: ModelSource, value: Any) -> None:
        """``role_arn`` and ``s3_prefix`` come together.

        Without both, ``package`` writes no requests (and says so); one without the
        other is a half-configured model that would be packaged without requests by
        mistake. The other keys (``region``, ``max_runtime``, ``tags``...) may be set in
        ``defaults`` for models that have requests, so alone they are not an error.
        """
        from neobuild.model import REQUEST_KEYS

        if not isinstance(value, dict):
            return
        missing = [k for k in REQUEST_KEYS if value.get(k) in (None, "")]
        if not missing or len(missing) == len(REQUEST_KEYS):
            return
        given = [k for k in REQUEST_KEYS if k not in missing]
        wanted = " and ".join(f"compile.{k}" for k in missing)
        examples = {
            "role_arn": "arn:aws:iam::<account>:role/<name>",
            "s3_prefix": "s3://<bucket>/<prefix>",
        }
        self.out.report_model(
            src,
            ("compile", given[0]),
            f"compile settings are incomplete: {wanted} {'is' if len(missing) == 1 else 'are'} "
            f"not set, so no compilation request can be written (compile.{given[0]} is)",
            hint="add "
            + " and ".join(f"`{k}: {examples[k]}`" for k in missing)
            + " under compile: (in the model or in defaults), or remove the compile settings "
            "to package without requests",
            at="key",
        )

    def compile_settings(self, value: Any) -> CompileSettings:
        if not isinstance(value, dict):
            return CompileSettings()
        vpc = value.get("vpc")
        vpc_config = None
        if isinstance(vpc, dict):
            groups, subnets = vpc.get("security_group_ids"), vpc.get("subnets")
            if isinstance(groups, list) and isinstance(subnets, list):
                vpc_config = VpcConfig(
                    security_group_ids=tuple(str(g) for g in groups),
                    subnets=tuple(str(s) for s in subnets),
                )
        tags = value.get("tags")
        max_runtime = value.get("max_runtime")
        return CompileSettings(
            role_arn=_str_or_none(value.get("role_arn")),
            s3_prefix=_str_or_none(value.get("s3_prefix")),
            region=_str_or_none(value.get("region")),
            max_runtime=max_runtime
            if isinstance(max_runtime, int) and is_int(max_runtime)
            else DEFAULT_MAX_RUNTIME,
            kms_key_id=_str_or_none(value.get("kms_key_id")),
            vpc=vpc_config,
            tags=tuple(sorted((str(k), str(v)) for k, v in tags.items()))
            if isinstance(tags, dict)
            else (),
        )

    def inputs_in_build_dir(self, src: ModelSource, model: Model, build: str) -> None:
        """``package`` refuses a build_dir holding a model's input: say so here first.

        ``build`` is the build_dir's real path: an input reached through a symlink counts.
        """
        for key, rel in (
            ("export", model.export.path),
            ("requirements", model.requirements_file),
            ("templates_dir", model.templates_dir),
        ):
            if rel is None:
                continue
            path = self.files.real(rel)
            if path == build or path.startswith(build + os.sep):
                shown = os.path.relpath(build, os.path.realpath(self.files.root))
                self.out.report_model(
                    src,
                    (key,),
                    f"{rel} is inside build_dir {Path(shown).as_posix()}, which neobuild replaces",
                    hint="set build_dir to a directory of its own, e.g. build/neo",
                )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
