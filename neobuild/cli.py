"""The ``neobuild`` command line: options in, one api call, its result out.

Each command turns its options into keyword arguments for one function of
:mod:`neobuild.api` and renders what it returns. Results go to stdout (tables, or a
``--json`` document alone); progress, warnings and errors to stderr. Exit codes: 0 ok,
1 a build or check failed, 2 bad input, 3 internal error (crash log written),
130 interrupted.
"""

# No ``from __future__ import annotations`` here: typer reads every command's annotations
# on each run, and as strings it evaluates ~340 of them each time (~10 ms of every start).
import json
import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from typer.core import TyperGroup

from neobuild import __version__, api, completion
from neobuild.console import Output, print_json, print_json_text
from neobuild.error_handler import guarded
from neobuild.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    BuildInterrupted,
    Signalled,
    UsageError,
)

if TYPE_CHECKING:
    from neobuild.results import BuildReport

#: Options of the top-level callback that take a value (they come before the command).
_VALUED_GLOBALS = frozenset({"-C", "--directory", "--manifest"})
_VERBOSITY = re.compile(r"-(?:v+|q+)|--verbose|--quiet")


class _Group(TyperGroup):
    """Accepts ``-v``/``-q`` after the command too (``neobuild plan -q``).

    They are moved in front of the command, where the top-level callback counts them,
    so there is one meaning and one place for them.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, hoist_verbosity(args))


def hoist_verbosity(args: list[str]) -> list[str]:
    """``[..., CMD, ..., -q, ...]`` -> ``[..., -q, CMD, ...]``; nothing after ``--`` moves."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in _VALUED_GLOBALS else 1
    if i >= len(args):
        return args
    head, command, rest = args[:i], args[i], args[i + 1 :]
    end = rest.index("--") if "--" in rest else len(rest)
    moved = [a for a in rest[:end] if _VERBOSITY.fullmatch(a)]
    kept = [a for a in rest[:end] if not _VERBOSITY.fullmatch(a)] + rest[end:]
    return [*head, *moved, command, *kept]


app = typer.Typer(
    name="neobuild",
    cls=_Group,
    help="Build SageMaker Neo inputs for every model declared in neo.yaml.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich, markdown-it and pygments
    # (~100 ms) before printing a line (issue 14: `--help` within 100 ms).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _examples(lines: list[str]) -> str:
    """A command's --help epilog: examples, and where the global options go."""
    shown = "\n\n".join(f"  $ {line}" for line in lines)
    return (
        f"Examples:\n\n{shown}\n\n"
        "-v/-q (more/less output) work before or after the command; "
        "-C DIR and --manifest FILE go before it."
    )


@dataclass
class Globals:
    """Options given before the command."""

    directory: Path | None
    manifest: Path | None
    out: Output

    def manifest_path(self) -> Path:
        return api.locate_manifest(directory=self.directory, manifest=self.manifest)


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    if isinstance(obj, Globals):
        return obj
    return Globals(directory=None, manifest=None, out=Output())  # pragma: no cover


def _run(ctx: typer.Context, body: Any) -> None:
    """Run a command body under the error boundary and exit with its code."""
    g = _globals(ctx)
    code = guarded(g.out, lambda: body(g))
    raise typer.Exit(code if isinstance(code, int) else EXIT_OK)


class _Result(Protocol):
    def to_json(self) -> Any: ...

    def render(self) -> str: ...


def _print_result(g: Globals, result: _Result, *, as_json: bool, to_stderr: bool = False) -> None:
    """A command's result: its ``--json`` document alone on stdout, or its text."""
    if as_json:
        print_json(result.to_json())
    elif to_stderr:
        g.out.info(result.render())
    else:
        g.out.result(result.render())


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neobuild {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("-C", "--directory", help="Run as if started in DIR.", metavar="DIR"),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", help="Use this neo.yaml instead of searching for one.", metavar="FILE"
        ),
    ] = None,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="More output (stream export logs).")
    ] = 0,
    quiet: Annotated[
        int,
        typer.Option(
            "-q", "--quiet", count=True, help="Less output: -q warnings and errors, -qq errors."
        ),
    ] = 0,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """neobuild: export, check, package and compile every model of a repository for SageMaker Neo."""
    ctx.obj = Globals(directory=directory, manifest=manifest, out=Output(verbosity=verbose - quiet))


@app.command(epilog=_examples(["neobuild init", "neobuild -C path/to/repo init --force"]))
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing neo.yaml.")] = False,
) -> None:
    """Write a commented starter neo.yaml in the current directory."""

    def body(g: Globals) -> int:
        path = api.init(directory=g.directory or Path.cwd(), manifest=g.manifest, force=force)
        g.out.info(f"wrote {path}; next: declare your models, then run `neobuild validate`")
        return EXIT_OK

    _run(ctx, body)


@app.command(epilog=_examples(["neobuild validate", "neobuild validate --strict --json"]))
def validate(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="Print problems as JSON on stdout.")
    ] = False,
) -> None:
    """Check neo.yaml and its includes; report every problem with FILE:LINE:COL."""

    def body(g: Globals) -> int:
        result = api.validate(manifest_path=g.manifest_path(), strict=strict)
        if json_:
            print_json(result.to_json())
        else:
            for problem in result.problems:
                g.out.console.print(problem.render(), markup=False, highlight=False)
            g.out.info(result.summary())
        return EXIT_OK if result.ok else EXIT_BAD_INPUT

    _run(ctx, body)


@app.command(epilog=_examples(["neobuild schema > neo.schema.json"]))
def schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of neo.yaml (for editors: yaml-language-server)."""

    def body(g: Globals) -> int:
        print_json(api.schema())
        return EXIT_OK

    _run(ctx, body)


ModelsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Models by name, glob (vision-*) or tag:NAME (or --all).",
        show_default=False,
        autocompletion=completion.model_patterns,
    ),
]
AllOption = Annotated[bool, typer.Option("--all", help="Every model of the manifest.")]
JsonReportOption = Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")]
JunitOption = Annotated[
    Path | None, typer.Option("--junit", help="Write a JUnit XML report.", metavar="FILE")
]
PlanModelsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Models by name, glob (vision-*) or tag:NAME; default: all.",
        show_default=False,
        autocompletion=completion.model_patterns,
    ),
]


@app.command(
    epilog=_examples(
        [
            "neobuild plan | grep resnet",
            "neobuild plan --since origin/main --check",
            "neobuild plan --explain resnet18",
            'neobuild plan --matrix 4 >> "$GITHUB_OUTPUT"',
        ]
    )
)
def plan(
    ctx: typer.Context,
    models: PlanModelsArg = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON on stdout.")
    ] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if anything is stale.")] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only models affected since git REF.", metavar="REF"),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="Only shard K of N (1-based), e.g. 2/4.", metavar="K/N"),
    ] = None,
    matrix: Annotated[
        int | None,
        typer.Option(
            "--matrix", help="Print a GitHub Actions matrix of N shards.", metavar="N", min=1
        ),
    ] = None,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Show MODEL's fingerprint, old vs new.", metavar="MODEL"),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="With --matrix: every model, not only stale ones.")
    ] = False,
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            help="With --matrix: balance shards by model durations from JUnit reports of a previous run.",
            metavar="JUNIT",
        ),
    ] = None,
) -> None:
    """List model x target work, and why each item is stale or fresh."""

    def body(g: Globals) -> int:
        if matrix is not None and shard is not None:
            raise UsageError(
                "--matrix and --shard do not go together",
                hint="--matrix N splits the plan into N shards itself",
            )
        result = api.plan(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            since=since,
            shard=shard,
            matrix=matrix,
            explain=explain,
            include_fresh=all_,
            weights=weights or [],
        )
        for warning in result.warnings:
            g.out.warn(warning)
        if matrix is not None:  # one compact line, ready for $GITHUB_OUTPUT
            sys.stdout.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        elif json_:
            print_json_text(result.to_json_text())
        else:
            g.out.result(result.render())
        if check and result.stale_count:
            return EXIT_FAILED
        return EXIT_OK

    _run(ctx, body)


@app.command(
    epilog=_examples(
        [
            "neobuild package resnet18",
            "neobuild package 'tag:vision' -j 4 -k",
            "neobuild package --all --json --junit reports/junit.xml",
        ]
    )
)
def package(
    ctx: typer.Context,
    models: ModelsArg = None,
    all_: AllOption = False,
    jobs: Annotated[
        int,
        typer.Option(
            "-j",
            "--jobs",
            help="Exports to run at once; 0 means one per core.",
            min=0,
            show_default=False,
        ),
    ] = 0,
    keep_going: Annotated[
        bool, typer.Option("-k", "--keep-going", help="Build the other models when one fails.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild fresh models too.")] = False,
    smoke: Annotated[
        bool | None,
        typer.Option("--smoke/--no-smoke", help="Run the rendered handler on the exported model."),
    ] = None,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete",
            help="Render requests with placeholders for missing compile settings.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only models affected since git REF.", metavar="REF"),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Only shard K of N, e.g. 2/4.", metavar="K/N")
    ] = None,
    wait_lock: Annotated[
        bool,
        typer.Option("--wait-lock", help="Wait for another run's build lock instead of failing."),
    ] = False,
    wait_deprecated: Annotated[
        bool, typer.Option("--wait", hidden=True, help="Deprecated spelling of --wait-lock.")
    ] = False,
    json_: JsonReportOption = False,
    junit: JunitOption = None,
    compile_check: Annotated[
        bool | None,
        typer.Option(
            "--compile-check/--no-compile-check",
            help="Compile each export locally with TVM/Treelite and compare (needs neobuild[tvm]).",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Fail a model whose compile check is unsupported/mismatch."),
    ] = False,
    fork_server: Annotated[
        bool,
        typer.Option(
            "--fork-server/--no-fork-server",
            help="Fork exports that share an environment from one pre-warmed process.",
        ),
    ] = True,
) -> None:
    """Export what is stale, check it, package it, render scripts and requests, update neo.lock."""

    def body(g: Globals) -> int:
        if wait_deprecated:
            g.out.warn(
                "`package --wait` is deprecated: it is now `--wait-lock` "
                "(`--wait` polls compilation jobs in `compile`)"
            )
        try:
            report = _package(g)
        except BuildInterrupted as exc:  # Ctrl-C or SIGTERM: report what finished
            if json_:
                print_json(exc.report.to_json())
            raise
        if json_:
            print_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_FAILED

    def _package(g: Globals) -> "BuildReport":
        return api.package(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            all_models=all_,
            jobs=jobs or (os.cpu_count() or 1),
            keep_going=keep_going,
            force=force,
            smoke=smoke,
            allow_incomplete=allow_incomplete,
            since=since,
            shard=shard,
            wait=wait_lock or wait_deprecated,
            junit=junit,
            fork_server=fork_server,
            out=g.out,
            compile_check=compile_check,
            strict=strict,
        )

    _run(ctx, body)


@app.command(epilog=_examples(["neobuild check --all", "neobuild check resnet18 --strict --json"]))
def check(
    ctx: typer.Context,
    models: ModelsArg = None,
    all_: AllOption = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when a model is unsupported or mismatched.")
    ] = False,
    json_: JsonReportOption = False,
    junit: JunitOption = None,
) -> None:
    """Compile packed models locally with TVM/Treelite and compare (a hint, not Neo's verdict)."""

    def body(g: Globals) -> int:
        result = api.check(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            all_models=all_,
            strict=strict,
            junit=junit,
            out=g.out,
        )
        _print_result(g, result, as_json=json_, to_stderr=True)
        return EXIT_OK if result.ok else EXIT_FAILED

    _run(ctx, body)


@app.command(epilog=_examples(["neobuild verify", "neobuild verify --json"]))
def verify(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print drifts as JSON on stdout.")] = False,
) -> None:
    """Re-hash every output against neo.lock; exit 1 on any drift."""

    def body(g: Globals) -> int:
        result = api.verify(manifest_path=g.manifest_path())
        _print_result(g, result, as_json=json_)
        return EXIT_OK if result.ok else EXIT_FAILED

    _run(ctx, body)


@app.command(
    name="compile",
    epilog=_examples(["neobuild compile resnet18", "neobuild compile --all --submit --wait"]),
)
def compile_(
    ctx: typer.Context,
    models: ModelsArg = None,
    all_: AllOption = False,
    submit: Annotated[
        bool, typer.Option("--submit", help="Upload archives and create the compilation jobs.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll the jobs until they end.")] = False,
    json_: JsonReportOption = False,
) -> None:
    """Pre-flight the CreateCompilationJob requests; --submit runs them on SageMaker Neo."""

    def body(g: Globals) -> int:
        result = api.compile(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            all_models=all_,
            submit=submit,
            wait=wait,
            out=g.out,
            confirm_stop=_confirm_stop if sys.stdin.isatty() else None,
        )
        _print_result(g, result, as_json=json_)
        return EXIT_OK if result.ok else EXIT_FAILED

    _run(ctx, body)


@app.command(
    epilog=_examples(
        [
            "neobuild add resnet18 --framework pytorch --framework-version 1.8 --export models/resnet18/export.py:export --input input0=1,3,224,224 --target ml_c5"
        ]
    )
)
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The new model's name.", show_default=False)],
    framework: Annotated[
        str,
        typer.Option(
            "--framework",
            help="keras, mxnet, onnx, pytorch, tensorflow, tflite, xgboost, darknet.",
            autocompletion=completion.frameworks,
        ),
    ],
    export: Annotated[
        str,
        typer.Option("--export", help="The export function: path/to/file.py:function."),
    ],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="An input and its shape, NAME=1,3,224,224 (repeat for more; PyTorch may "
            "omit NAME=).",
            metavar="NAME=SHAPE",
        ),
    ] = None,
    targets: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            help="A target device, e.g. ml_c5 (repeat for more).",
            metavar="DEVICE",
            autocompletion=completion.target_devices,
        ),
    ] = None,
    framework_version: Annotated[
        str | None, typer.Option("--framework-version", help="Neo's framework version, e.g. 1.8.")
    ] = None,
    tags: Annotated[
        list[str] | None, typer.Option("--tag", help="A tag (repeat for more).", metavar="TAG")
    ] = None,
    requirements: Annotated[
        str | None,
        typer.Option(
            "--requirements",
            help="A requirements file: export in a venv of its own.",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Add a model to neo.yaml, keeping its comments; nothing is written unless it validates."""

    def body(g: Globals) -> int:
        from neobuild.add import NewModel

        new = NewModel(
            framework=framework,
            export=export,
            inputs=inputs or [],
            targets=targets or [],
            framework_version=framework_version,
            tags=tags or [],
            requirements=requirements,
        )
        result = api.add(manifest_path=g.manifest_path(), name=name, new=new)
        for warning in result.warnings:
            g.out.warn(warning.render())
        g.out.info(
            f"added {result.name} to {result.manifest_path}; next: `neobuild package {name}`"
        )
        return EXIT_OK

    _run(ctx, body)


@app.command(epilog=_examples(["neobuild show resnet18", "neobuild show resnet18 --json"]))
def show(
    ctx: typer.Context,
    model: Annotated[
        str,
        typer.Argument(
            help="The model's name.",
            show_default=False,
            autocompletion=completion.model_patterns,
        ),
    ],
    json_: Annotated[bool, typer.Option("--json", help="Print it as JSON on stdout.")] = False,
) -> None:
    """Show one model: its resolved entry, status, files, hashes, requests and jobs."""

    def body(g: Globals) -> int:
        result = api.show(manifest_path=g.manifest_path(), name=model)
        _print_result(g, result, as_json=json_)
        return EXIT_OK

    _run(ctx, body)


def _confirm_stop(jobs: Any) -> bool:
    """Asked on Ctrl-C while waiting for compilation jobs."""
    return typer.confirm(
        f"stop {len(jobs)} running compilation job(s) on SageMaker?", default=False
    )


def _interrupt(signum: int, frame: object) -> None:
    # CI cancels with SIGTERM: treat it like Ctrl-C, so running exports are stopped
    # and nothing half-built is kept. Signalled, not KeyboardInterrupt: see its docstring.
    raise Signalled(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """Turn SIGTERM, and Ctrl-C unless it is ignored, into :class:`Signalled`."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)


def main() -> None:
    """Console-script entry point."""
    install_signal_handlers()
    app(prog_name="neobuild")
