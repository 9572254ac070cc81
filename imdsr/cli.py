"""The one command line, ``imdsr``. Each part of the system contributes its own sub-commands.

Sub-command modules import heavy dependencies (torch, tritonclient) inside the commands, so that
``imdsr serve`` never imports torch and ``imdsr --help`` stays fast.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import typer

app = typer.Typer(
    name="imdsr",
    help="IMDeception 4x super-resolution: train, export, serve, upscale, benchmark.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

bench_app = typer.Typer(help="Benchmarks: each prints ratios measured side by side in one run.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")

# Each module exposes ``register(app, bench_app)``; a part whose dependencies are not installed
# (e.g. training without torch in the gateway image) is skipped.
_PARTS = (
    "training.cli_model",   # weights, infer, model summary
    "training.cli_train",   # data, train, eval
    "export.cli",           # export onnx|trt|plans|repo|check-repo
    "triton_host.cli",      # triton launcher
    "service.cli",          # serve, gateway, upscale (HTTP client)
    "bench.cli",            # bench model|tiling|wire
)


_OWN_PACKAGES = {"imdsr", "training", "export", "service", "triton_host", "bench"}

# Views of the settings that live with their layer (imdsr/settings.py holds the others), imported
# when the environment is checked so that they register; not at start-up, where pydantic-settings
# would slow `imdsr --help`.
_LAYER_VIEWS = (
    "service.settings",     # the gateway's Settings; absent without pydantic-settings (export image)
)


def _import_part(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # A part whose third-party dependencies are not installed (the gateway image has no
        # torch) is left out; a missing module of our own is a bug and is raised.
        if exc.name and exc.name.split(".")[0] not in _OWN_PACKAGES:
            return None
        raise


def _register_parts() -> None:
    for name in _PARTS:
        module = _import_part(name)
        if module is not None:
            module.register(app, bench_app)


_register_parts()


def known_variables() -> set[str]:
    """Every ``IMDSR_`` variable a view of the settings defines, the layers' views included."""
    from imdsr.environment import known_variables as registered

    for name in _LAYER_VIEWS:
        _import_part(name)
    return registered()


@app.callback()
def _check_environment() -> None:
    # Before any command: a misspelt IMDSR_ variable would otherwise be ignored silently.
    import os

    from imdsr.environment import UnknownVariableError, check_environment

    try:
        check_environment(known_variables(), os.environ)
    except UnknownVariableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover - console entry
    app()
