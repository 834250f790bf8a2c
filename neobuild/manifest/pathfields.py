"""A model's fields that name files: ``export``, ``sources``, ``requirements``,
``templates_dir``; each must stay inside the repository and name what is there.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from neobuild.manifest.diagnostics import Reporter, short
from neobuild.manifest.positions import ModelSource, PathKey
from neobuild.manifest.repofiles import FLAW_HINT, RepoFiles, path_flaw, path_guess
from neobuild.model import ExportRef
from neobuild.sources import literal_prefix
from neobuild.suggest import did_you_mean

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_EXPORT_PATH = re.compile(rf"(?P<path>[^:\s]+\.py):(?P<function>{_IDENT})")
_EXPORT_MODULE = re.compile(rf"(?P<module>{_IDENT}(?:\.{_IDENT})*):(?P<function>{_IDENT})")


class PathFields:
    """Checks a model's fields that name files in the repository."""

    def __init__(self, out: Reporter, files: RepoFiles) -> None:
        self.out = out
        self.files = files

    def export(self, src: ModelSource, value: Any) -> ExportRef | None:
        if not isinstance(value, str) or not value:
            return None
        sub: PathKey = ("export",)
        doc = src.origin("export")
        by_path = _EXPORT_PATH.fullmatch(value)
        flaw = path_flaw(by_path["path"], pattern=False) if by_path is not None else None
        if flaw is not None:
            self.out.report_model(src, sub, f"export file {short(value)} {flaw}", hint=FLAW_HINT)
            return None
        if by_path is not None:
            rel = self.files.repo_path(doc, by_path["path"])
            if rel is None:
                self.out.report_model(
                    src, sub, f"export file {by_path['path']!r} is outside the repository"
                )
                return None
            if not self.files.exists(rel, "f"):
                self.out.report_model(
                    src,
                    sub,
                    f"export file {rel} does not exist",
                    hint="paths are relative to the manifest file that declares the model",
                )
                return None
            if not self.files.resolves_inside(rel):
                self.out.report_model(
                    src,
                    sub,
                    f"export file {rel} is a symlink that leads outside the repository",
                    hint="keep export code inside the repository so its changes are tracked",
                )
                return None
            if not self.export_function(src, rel, by_path["function"]):
                return None
            return ExportRef(function=by_path["function"], path=rel)
        by_module = _EXPORT_MODULE.fullmatch(value)
        if by_module is not None:
            module_file = self.module_file(by_module["module"])
            if module_file is not None and not self.export_function(
                src, module_file, by_module["function"]
            ):
                return None
            return ExportRef(function=by_module["function"], module=by_module["module"])
        self.out.report_model(
            src,
            sub,
            f"export {value!r} is not path/to/file.py:function or package.module:function",
            hint="e.g. export: models/resnet/export.py:export",
        )
        return None

    def module_file(self, module: str) -> str | None:
        """The repo-relative file of ``package.module`` when it is in the repository."""
        from neobuild.entrypoint import module_candidates

        for candidate in module_candidates(module):
            if self.files.exists(candidate, "f") and self.files.resolves_inside(candidate):
                return candidate
        return None  # an installed package: the export environment resolves it

    def export_function(self, src: ModelSource, rel: str, function: str) -> bool:
        """Whether ``rel`` may define ``function`` (parsed with ast, never imported).

        ``package`` would refuse the model after building its environment and starting
        the export; this finds it first. The file's stat is recorded so the manifest
        cache re-checks it when the file changes.
        """
        from neobuild.entrypoint import scan

        try:
            stat = os.stat(self.files.root / rel)
        except OSError:
            return True
        self.files.probes[f"s:{stat.st_mtime_ns}:{stat.st_size}:{rel}"] = True
        found = scan(self.files.root / rel)
        if found is None:
            return True
        if found.syntax_error is not None:
            self.out.report_model(
                src,
                ("export",),
                f"export file {rel} is not valid Python ({found.syntax_error})",
                hint="fix the file; the export would fail to import it",
            )
            return False
        if found.lacks(function):
            names = found.functions()
            self.out.report_model(
                src,
                ("export",),
                f"export file {rel} defines no function {function!r}",
                hint=did_you_mean(function, names)
                or (f"it defines: {', '.join(names[:8])}" if names else "the file defines nothing"),
            )
            return False
        return True

    def sources(self, src: ModelSource, value: Any, export: ExportRef | None) -> tuple[str, ...]:
        if isinstance(value, list):
            doc = src.origin("sources")
            result: list[str] = []
            for i, pattern in enumerate(value):
                if not isinstance(pattern, str) or not pattern:
                    continue
                flaw = path_flaw(pattern, pattern=True)
                rel = self.files.repo_path(doc, pattern) if flaw is None else None
                prefix = literal_prefix(rel) if rel is not None else ""
                if flaw is None and rel is None:
                    flaw = "leaves the repository"
                elif rel is not None and prefix and not self.files.resolves_inside(prefix):
                    flaw = f"leaves the repository: {prefix} is a symlink to outside it"
                if flaw is not None:
                    self.out.report_model(src, ("sources", i), f"source {short(pattern)} {flaw}")
                    continue
                assert rel is not None
                if not self.files.source_matches(rel):
                    guess = path_guess(self.files.root, rel, pattern)
                    self.out.report_model(
                        src,
                        ("sources", i),
                        f"{pattern!r} matches no file",
                        severity="warning",
                        hint=f"{guess} (paths are relative to this file)"
                        if guess
                        else "check the glob (paths are relative to this file): the model "
                        "is not rebuilt when a file its sources miss changes",
                    )
                result.append(rel)
            return tuple(result)
        if export is None:
            return ()
        path = export.path
        if path is None and export.module is not None:
            stem = export.module.replace(".", "/")
            for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
                if self.files.exists(candidate, "f"):
                    path = candidate
                    break
        if path is None:
            return ()
        directory = posixpath.dirname(path)
        return (f"{directory}/**",) if directory else (path,)

    def requirements(self, src: ModelSource, value: Any) -> tuple[tuple[str, ...], str | None]:
        if isinstance(value, list):
            return tuple(str(v) for v in value if isinstance(v, str)), None
        if not isinstance(value, str):
            return (), None
        flaw = path_flaw(value, pattern=False)
        if flaw is not None:
            self.out.report_model(
                src, ("requirements",), f"requirements file {short(value)} {flaw}", hint=FLAW_HINT
            )
            return (), None
        rel = self.files.inside(src.origin("requirements"), value)
        if rel is None:
            self.out.report_model(
                src, ("requirements",), f"requirements file {value!r} is outside the repository"
            )
            return (), None
        if not self.files.exists(rel, "f"):
            self.out.report_model(
                src,
                ("requirements",),
                f"requirements file {rel} does not exist",
                hint="give a file path, or a list of specifiers: [torch==2.0.1]",
            )
        return (), rel

    def templates_dir(self, src: ModelSource, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        flaw = path_flaw(value, pattern=False)
        if flaw is not None:
            self.out.report_model(src, ("templates_dir",), f"{short(value)} {flaw}", hint=FLAW_HINT)
            return None
        rel = self.files.inside(src.origin("templates_dir"), value)
        if rel is None:
            self.out.report_model(
                src, ("templates_dir",), f"{short(value)} is outside the repository"
            )
            return None
        if not self.files.exists(rel, "d"):
            self.out.report_model(
                src, ("templates_dir",), f"templates_dir {rel} is not a directory"
            )
        return rel
