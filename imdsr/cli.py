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

# Each module exposes ``register(app)``; missing modules (a part not installed) are skipped.
_PARTS = (
    "training.cli",
    "export.cli",
    "service.cli",
)


def _register_parts() -> None:
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(app)


_register_parts()


def main() -> None:  # pragma: no cover - console entry
    app()
