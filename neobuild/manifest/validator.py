"""The validation of one manifest: its parts run in order over the file and its includes."""

from __future__ import annotations

import os
from pathlib import Path

from neobuild.errors import Problem
from neobuild.manifest.builder import ModelBuilder
from neobuild.manifest.constants import DEFAULT_BUILD_DIR
from neobuild.manifest.diagnostics import Reporter, short
from neobuild.manifest.positions import Doc
from neobuild.manifest.repofiles import FLAW_HINT, RepoFiles, path_flaw
from neobuild.manifest.resolve import Resolver
from neobuild.manifest.schemacheck import SchemaChecker
from neobuild.model import CacheSettings, Manifest, Model
from neobuild.statefile import STATE_DIR


class Validator:
    """One validation of a manifest and its includes: parse, check, resolve, build.

    The jobs are the cooperating parts' (:class:`Reporter`, :class:`SchemaChecker`,
    :class:`RepoFiles`, :class:`Resolver`, :class:`ModelBuilder`); this runs them in order.
    """

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self.docs: list[Doc] = []
        self.out = Reporter(self.docs)
        self.files = RepoFiles(root)
        self.schema = SchemaChecker(self.out)
        self.resolver = Resolver(self.out, self.schema, self.files)
        self.builder = ModelBuilder(self.out, self.files)

    def sorted_problems(self) -> list[Problem]:
        return self.out.sorted_problems()

    def run(self, data: bytes) -> Manifest | None:
        top = Doc(self.path, "", 0)
        self.docs.append(top)
        if not self.resolver.parse_file(top, data, "top"):
            return None
        self.resolver.load_includes(top)
        sources = self.resolver.collect_models()
        models: dict[str, Model] = {}
        for src in sources:
            model = self.builder.build_model(src)
            if model is not None:
                models[src.name] = model
        settings = self.top_level(top)
        if settings is not None:
            build_real = os.path.realpath(settings[0])
            for src in sources:
                if src.name in models:
                    self.builder.inputs_in_build_dir(src, models[src.name], build_real)
        if self.out.has_errors or settings is None:
            return None
        build_dir, templates_dir, cache = settings
        warnings = tuple(p for p in self.sorted_problems() if p.severity == "warning")
        return Manifest(
            path=self.path,
            root=self.root,
            build_dir=build_dir,
            models=models,
            files=tuple(doc.path for doc in self.docs),
            cache=cache,
            templates_dir=templates_dir,
            warnings=warnings,
        )

    def top_level(self, top: Doc) -> tuple[Path, Path | None, CacheSettings | None] | None:
        data = top.data
        build = data.get("build_dir", DEFAULT_BUILD_DIR)
        if not isinstance(build, str) or not build:
            return None
        flaw = path_flaw(build, pattern=False)
        if flaw is not None:
            self.out.report(top, ("build_dir",), f"build_dir {short(build)} {flaw}", hint=FLAW_HINT)
            return None
        build_rel = self.files.repo_path(top, build)
        real = self.files.real(build_rel) if build_rel is not None else ""
        if build_rel is None or build_rel == "." or not self.files.resolves_inside(build_rel):
            self.out.report(
                top,
                ("build_dir",),
                f"build_dir {short(build)} must be a directory inside the repository"
                + (" (a symlink leads outside it)" if build_rel not in (None, ".") else ""),
                hint="e.g. build_dir: build/neo",
            )
            return None
        git = self.files.real(".git")
        if real == git or real.startswith(git + os.sep) or real == self.files.real(STATE_DIR):
            self.out.report(
                top,
                ("build_dir",),
                f"build_dir {short(build)} is inside {'.git' if real.startswith(git) else STATE_DIR}",
                hint="e.g. build_dir: build/neo",
            )
            return None
        templates: Path | None = None
        value = data.get("templates_dir")
        if isinstance(value, str) and value:
            flaw = path_flaw(value, pattern=False)
            rel = self.files.inside(top, value) if flaw is None else None
            if rel is None:
                self.out.report(
                    top,
                    ("templates_dir",),
                    f"{short(value)} {flaw or 'is outside the repository'}",
                    hint=FLAW_HINT if flaw else None,
                )
            elif not self.files.exists(rel, "d"):
                self.out.report(top, ("templates_dir",), f"templates_dir {rel} is not a directory")
            else:
                templates = self.root / rel
        cache = data.get("cache")
        settings = None
        if isinstance(cache, dict) and isinstance(cache.get("url"), str):
            settings = CacheSettings(url=cache["url"], read_only=cache.get("read_only") is True)
        return self.root / build_rel, templates, settings
