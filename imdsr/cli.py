"""The one command line, ``imdsr``. Each part of the system contributes its own sub-commands.

Sub-command modules import heavy dependencies (torch, tritonclient) inside the commands, so that
``imdsr serve`` never imports torch and ``imdsr --help`` stays fast.
"""

from __future__ import annotations

import importlib

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


def _register_parts() -> None:
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # A part whose third-party dependencies are not installed (the gateway image has no
            # torch) is left out; a missing module of our own is a bug and is raised.
            if exc.name and exc.name.split(".")[0] not in _OWN_PACKAGES:
                continue
            raise
        module.register(app, bench_app)


_register_parts()


def _option_variables(command: object) -> set[str]:
    """The ``envvar`` of every option of a click command and its sub-commands (duck-typed: typer
    may build its commands on a click of its own)."""
    names: set[str] = set()
    for param in getattr(command, "params", []):
        env = getattr(param, "envvar", None)
        names.update([env] if isinstance(env, str) else list(env or []))
    for sub in (getattr(command, "commands", None) or {}).values():
        names |= _option_variables(sub)
    return names


def known_variables(root: object) -> set[str]:
    """Every ``IMDSR_`` variable an option of ``root`` or a gateway setting reads."""
    names = _option_variables(root)
    try:
        from service.settings import Settings
    except ModuleNotFoundError:  # an image without the gateway's dependencies
        return names
    prefix = Settings.model_config.get("env_prefix", "")
    return names | {f"{prefix}{field}".upper() for field in Settings.model_fields}


@app.callback()
def _check_environment(ctx: typer.Context) -> None:
    # Before any command: a misspelt IMDSR_ variable would otherwise be ignored silently.
    import os

    from imdsr.environment import UnknownVariableError, check_environment

    try:
        check_environment(known_variables(ctx.find_root().command), os.environ)
    except UnknownVariableError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:  # pragma: no cover - console entry
    app()
