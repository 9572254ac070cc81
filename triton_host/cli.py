"""``imdsr triton``: run a real Triton Inference Server on a model repository.

Imports nothing heavy (no torch, no tritonclient): this is what the serving image runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT
from imdsr.settings import LauncherSettings

# The committed CPU repository; IMDSR_MODEL_REPOSITORY (or --repo) names another. `imdsr serve`
# takes the same option.
DEFAULT_REPO: Path = LauncherSettings.default("model_repository")
RepoOpt = Annotated[Path, LauncherSettings.option("model_repository")]


def triton(
    repo: RepoOpt = DEFAULT_REPO,
    http_port: Annotated[int, typer.Option(help="HTTP/REST port")] = DEFAULT_HTTP_PORT,
    grpc_port: Annotated[int, typer.Option(help="gRPC port")] = DEFAULT_GRPC_PORT,
    metrics_port: Annotated[int, typer.Option(help="Prometheus metrics port")] = DEFAULT_METRICS_PORT,
    host: Annotated[str, typer.Option(help="address to bind (0.0.0.0: every interface, as in a "
                                           "container)")] = "127.0.0.1",
    log_verbose: Annotated[int, typer.Option(help="Triton's --log-verbose level")] = 0,
    exit_timeout: Annotated[int, typer.Option(help="seconds to drain in-flight requests on stop")] = 30,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for every model")] = 300.0,
) -> None:
    """Start tritonserver (PATH, else the nvidia-pytriton wheel's), wait until every model is ready,
    forward SIGINT/SIGTERM/SIGHUP, and exit with Triton's status."""
    from triton_host.launcher import TritonLaunchError, TritonOptions, serve_forever

    opts = TritonOptions(repo, http_port, grpc_port, metrics_port, host, log_verbose, exit_timeout)
    try:
        code = serve_forever(opts, ready_timeout)
    except TritonLaunchError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from exc
    raise typer.Exit(code=code)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("triton")(triton)
