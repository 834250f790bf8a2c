"""A model's inputs: names and static shapes, in the form its framework takes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from neobuild import neo
from neobuild.manifest.diagnostics import Reporter, describe
from neobuild.manifest.positions import ModelSource, PathKey
from neobuild.model import InputForm, Inputs, InputSpec, Target


class InputFields:
    """Checks a model's ``inputs`` against its framework's rules."""

    def __init__(self, out: Reporter) -> None:
        self.out = out

    def inputs(
        self,
        src: ModelSource,
        framework: str | None,
        version: str | None,
        targets: tuple[Target, ...] | None,
        m: Mapping[str, Any],
    ) -> Inputs | None:
        value = m.get("inputs")
        sub: PathKey = ("inputs",)
        if framework is None:  # still check the shapes
            if isinstance(value, dict):
                for k, v in value.items():
                    self.shape(src, (*sub, k), v)
            elif isinstance(value, list):
                for j, v in enumerate(value):
                    self.shape(src, (*sub, j), v)
            return None
        forms = neo.INPUT_FORMS[framework]
        empty = value is None or value == {} or value == []
        if framework == "xgboost":
            if not empty:
                self.out.report_model(
                    src, sub, "xgboost takes no inputs", hint="remove `inputs:` from this model"
                )
                return None
            return Inputs(form="none")
        if empty:
            if neo.inputs_optional(framework, version, targets or ()):
                return Inputs(form="none")
            hint = "e.g. inputs: {input0: [1, 3, 224, 224]}"
            if framework == "pytorch":
                hint += '; PyTorch may leave them out with framework_version "2.0" and only ml_* targets'
            self.out.report_model(src, sub, f"{framework} needs inputs (name -> shape)", hint=hint)
            return None
        if not isinstance(value, dict | list):
            return None  # cerberus reported the type
        if isinstance(value, list) and "list" not in forms:
            self.out.report_model(
                src,
                sub,
                f"{framework} takes inputs as a mapping of input name -> shape, not a list",
                hint="e.g. inputs: {input_1: [1, 3, 224, 224]}",
            )
            return None
        items: list[InputSpec] = []
        ok = True
        entries: list[tuple[str | None, PathKey, Any]]
        if isinstance(value, dict):
            entries = [(k, (*sub, str(k)), v) for k, v in value.items()]
        else:
            entries = [(None, (*sub, i), v) for i, v in enumerate(value)]
        for name, where, shape in entries:
            if name is not None and not isinstance(name, str):
                self.out.report_model(src, where, "input names must be strings", at="key")
                ok = False
                continue
            checked = self.shape(src, where, shape)
            if checked is None:
                ok = False
                continue
            items.append(InputSpec(name=name, shape=checked))
            warning = neo.layout_problem(framework, checked)
            if warning is not None:
                self.out.report_model(src, where, warning, severity="warning")
        if not ok:
            return None
        form: InputForm = "dict" if isinstance(value, dict) else "list"
        inputs = Inputs(form=form, items=tuple(items))
        text = json.dumps(inputs.as_json())
        limit = neo.FIELD_RULES["DataInputConfig"].max_len or 0
        if len(text) > limit:
            self.out.report_model(
                src,
                sub,
                f"inputs are {len(text)} characters of JSON; DataInputConfig allows {limit}",
            )
            return None
        return inputs

    def shape(self, src: ModelSource, where: PathKey, shape: Any) -> tuple[int, ...] | None:
        hint = "shapes are lists of positive integers, e.g. [1, 3, 224, 224]"
        if not isinstance(shape, list) or not shape:
            got = "an empty list" if shape == [] else describe(shape)
            self.out.report_model(
                src, where, f"a shape must be a list of positive integers, got {got}", hint=hint
            )
            return None
        ok = True
        for j, dim in enumerate(shape):
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                extra = (
                    "; Neo needs static shapes" if dim is None or (is_int(dim) and dim < 1) else ""
                )
                self.out.report_model(
                    src,
                    (*where, j),
                    f"a dimension must be a positive integer, got {describe(dim)}{extra}",
                    hint=hint,
                )
                ok = False
        return tuple(shape) if ok else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
