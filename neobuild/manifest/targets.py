"""A model's targets: a device or a platform each, with compiler options merged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from neobuild import neo
from neobuild.manifest.diagnostics import Reporter
from neobuild.manifest.positions import ModelSource, PathKey
from neobuild.model import Platform, Position, Target
from neobuild.suggest import did_you_mean


class TargetFields:
    """Checks a model's ``targets`` (devices, platforms) and their compiler options."""

    def __init__(self, out: Reporter) -> None:
        self.out = out

    def options(self, src: ModelSource, sub: PathKey, value: Any) -> Any:
        """Compiler options as JSON values; a JSON object written as a string is parsed."""
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return json.loads(value)
            except ValueError as exc:
                self.out.report_model(
                    src,
                    sub,
                    f"compiler_options is not valid JSON: {exc}",
                    hint="write it as a YAML mapping, e.g. compiler_options: {mcpu: skylake-avx512}",
                )
                return None
        if value is not None:
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                self.out.report_model(
                    src,
                    sub,
                    f"compiler_options cannot be written as JSON: {exc}",
                    hint="quote dates and use only strings, numbers, booleans, lists and mappings",
                )
                return None
        return value

    def targets(
        self, src: ModelSource, value: Any, model_options: Any
    ) -> tuple[list[tuple[int, Target]], bool]:
        """The valid targets with their index, and whether every target was valid."""
        if not isinstance(value, list):
            return [], False
        result: list[tuple[int, Target]] = []
        keys: dict[str, int] = {}
        ok = True
        for i, item in enumerate(value):
            sub: PathKey = ("targets", i)
            target = self.target(src, sub, item, model_options)
            if target is None:
                ok = False
                continue
            if target.key in keys:
                self.out.report_model(
                    src,
                    sub,
                    f"target {target.key} is listed twice (first at targets[{keys[target.key]}])",
                    hint="remove the duplicate",
                )
                ok = False
                continue
            keys[target.key] = i
            result.append((i, target))
        return result, ok and bool(result)

    def target(
        self, src: ModelSource, sub: PathKey, item: Any, model_options: Any
    ) -> Target | None:
        doc, full = src.locate(sub)
        line, col = doc.position(full)
        position = Position(doc.path, line, col)
        if isinstance(item, str):
            device = self.device(src, sub, item)
            if device is None:
                return None
            return Target(
                device=device,
                compiler_options=_merge_options(model_options, None),
                position=position,
            )
        if not isinstance(item, dict):
            return None  # cerberus reported the type
        has_device = item.get("device") is not None
        has_platform = item.get("platform") is not None
        if has_device == has_platform:
            self.out.report_model(
                src,
                sub,
                "a target needs exactly one of device or platform"
                if not has_device
                else "a target has device or platform, not both",
                hint="TargetDevice and TargetPlatform are mutually exclusive",
            )
            return None
        options = self.options(src, (*sub, "compiler_options"), item.get("compiler_options"))
        merged = _merge_options(model_options, options)
        if has_device:
            if not isinstance(item["device"], str):
                return None
            device = self.device(src, (*sub, "device"), item["device"])
            if device is None:
                return None
            return Target(device=device, compiler_options=merged, position=position)
        platform = self.platform(src, (*sub, "platform"), item["platform"])
        if platform is None:
            return None
        return Target(platform=platform, compiler_options=merged, position=position)

    def device(self, src: ModelSource, sub: PathKey, value: str) -> str | None:
        normal = value.lower()
        if normal in neo.TARGET_DEVICES:
            return normal
        guess = did_you_mean(value, neo.TARGET_DEVICES)
        hint = guess
        if guess is None and value.upper() in neo.PLATFORM_OS + neo.PLATFORM_ARCH:
            hint = "a platform is written {platform: {os: LINUX, arch: ARM64}}"
        self.out.report_model(
            src,
            sub,
            f"unknown target device {value!r}",
            hint=hint or "see `neobuild schema` for the 37 TargetDevice values",
        )
        return None

    def platform(self, src: ModelSource, sub: PathKey, value: Any) -> Platform | None:
        if not isinstance(value, dict):
            return None
        parts: dict[str, str | None] = {}
        ok = True
        for key, allowed in (
            ("os", neo.PLATFORM_OS),
            ("arch", neo.PLATFORM_ARCH),
            ("accelerator", neo.PLATFORM_ACCELERATOR),
        ):
            raw = value.get(key)
            if raw is None:
                parts[key] = None
                ok = ok and key == "accelerator"
                continue
            if not isinstance(raw, str):
                ok = False
                continue
            normal = raw.upper()
            if normal not in allowed:
                guess = did_you_mean(raw, allowed) or _ALIASES.get(normal)
                self.out.report_model(
                    src,
                    (*sub, key),
                    f"unknown {key} {raw!r}",
                    hint=guess or f"one of: {', '.join(allowed)}",
                )
                ok = False
                continue
            parts[key] = normal
        if not ok or parts["os"] is None or parts["arch"] is None:
            return None
        return Platform(os=parts["os"], arch=parts["arch"], accelerator=parts["accelerator"])


#: Names people type for an Arch/Os that is not in the enum.
_ALIASES = {
    "AARCH64": "did you mean 'ARM64'?",
    "AMD64": "did you mean 'X86_64'?",
    "X64": "did you mean 'X86_64'?",
    "ARMV7": "did you mean 'ARM_EABIHF'?",
    "INTEL": "did you mean 'INTEL_GRAPHICS'?",
    "WINDOWS": "Windows is reached through the devices x86_win32 / x86_win64",
}


def _merge_options(model: Any, target: Any) -> Any:
    """The target's compiler options merged over the model's (mappings merge)."""
    if target is None or target == {}:
        return model if model != {} else None
    if isinstance(model, dict) and isinstance(target, dict):
        return {**model, **target}
    return target


def target_sub(m: Mapping[str, Any], i: int, message: str) -> PathKey:
    """Point a target rule at the option it is about, when it is about one."""
    item = m["targets"][i] if isinstance(m.get("targets"), list) else None
    if isinstance(item, dict):
        about_options = any(w in message for w in ("compiler_options", "ANDROID_PLATFORM"))
        if about_options and "compiler_options" in item:
            return ("targets", i, "compiler_options")
        if "Neo does not support" in message and "platform" in item:
            return ("targets", i, "platform")
    return ("targets", i)
