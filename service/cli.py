"""``imdsr serve`` (Triton + gateway), ``imdsr gateway``, ``imdsr upscale``.

Heavy imports (uvicorn, the app) happen inside the commands, so that ``imdsr --help`` stays fast;
nothing here imports torch, training or export.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imdsr.contract import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_VARIANT,
)
from triton_host.cli import DEFAULT_REPO, RepoOpt

if TYPE_CHECKING:
    pass


HostOpt = Annotated[str, typer.Option(help="gateway bind address")]
PortOpt = Annotated[int, typer.Option(help="gateway port")]


def _run_gateway(host: str, port: int, triton_url: str | None = None) -> None:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(triton_url=triton_url) if triton_url else Settings()
    typer.echo(f"imdsr gateway: http://{host}:{port}  (Triton gRPC {settings.triton_url}, "
               f"docs at /docs)")
    # uvicorn handles SIGINT/SIGTERM: stops accepting, finishes requests, runs the lifespan end.
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=30)


def serve(
    host: HostOpt = "0.0.0.0",
    port: PortOpt = DEFAULT_GATEWAY_PORT,
    repo: RepoOpt = DEFAULT_REPO,
    triton_http_port: int = DEFAULT_HTTP_PORT,
    triton_grpc_port: int = DEFAULT_GRPC_PORT,
    triton_metrics_port: int = DEFAULT_METRICS_PORT,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for Triton")] = 300.0,
) -> None:
    """Start Triton (CPU, the committed model repository) and the gateway; stop both on exit."""
    from triton_host.launcher import TritonLaunchError, TritonOptions, TritonServer

    # Triton listens on loopback only: clients go through the gateway, which enforces limits.
    server = TritonServer(TritonOptions(repo=repo, http_port=triton_http_port,
                                        grpc_port=triton_grpc_port,
                                        metrics_port=triton_metrics_port, host="127.0.0.1"))
    typer.echo(f"imdsr serve: starting Triton on {repo}")
    server.start()
    try:
        server.wait_ready(ready_timeout)
        typer.echo(f"imdsr serve: Triton ready (grpc {server.grpc_url}, "
                   f"metrics {server.metrics_url})")
        _run_gateway(host, port, server.grpc_url)
    except TritonLaunchError as exc:
        typer.echo(f"imdsr serve: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        typer.echo("imdsr serve: stopping Triton")
        server.stop()


def gateway(host: HostOpt = "0.0.0.0", port: PortOpt = DEFAULT_GATEWAY_PORT) -> None:
    """Run the gateway alone, against the Triton at IMDSR_TRITON_URL (gRPC host:port)."""
    _run_gateway(host, port)


def upscale(
    url: Annotated[str, typer.Argument(help="gateway base URL, e.g. http://127.0.0.1:8080")],
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="input image")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the result")],
    model: Annotated[str | None, typer.Option(help=f"variant (server default: "
                                                   f"{DEFAULT_VARIANT})")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="png|jpeg|webp (default: "
                                            "from -o's suffix, else the input's family)")] = None,
    outscale: Annotated[float | None, typer.Option(help="final scale, e.g. 2 or 3.5")] = None,
    quality: Annotated[int | None, typer.Option(help="JPEG/WebP quality")] = None,
) -> None:
    """Upscale an image through the HTTP API."""
    from service.client import UpscaleFailed, upscale_file

    try:
        result = upscale_file(url, source, output, model=model, fmt=fmt, outscale=outscale,
                              quality=quality)
    except UpscaleFailed as exc:
        typer.echo(f"imdsr upscale: {exc}", err=True)
        raise typer.Exit(1) from exc
    h = result.headers
    typer.echo(f"{source} ({h.get('x-input-size')}) -> {output} ({h.get('x-output-size')}, "
               f"{result.content_type}, model {h.get('x-model')}, {h.get('x-tiles')} tiles; "
               f"{h.get('server-timing')})")


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("gateway")(gateway)
    app.command("upscale")(upscale)
