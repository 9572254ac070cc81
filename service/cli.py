"""``imdsr serve`` (Triton + gateway), ``imdsr gateway``, ``imdsr upscale``, ``imdsr bench tiling``.

Heavy imports (uvicorn, the app, torch for the benchmark) happen inside the commands, so that
``imdsr --help`` stays fast and the serving commands never import torch.
"""

from __future__ import annotations

import os
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

if TYPE_CHECKING:
    import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REPO = Path(os.environ.get("IMDSR_MODEL_REPOSITORY", PROJECT_ROOT / "model_repository"))

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
    repo: Annotated[Path, typer.Option(help="Triton model repository")] = DEFAULT_REPO,
    triton_http_port: int = DEFAULT_HTTP_PORT,
    triton_grpc_port: int = DEFAULT_GRPC_PORT,
    triton_metrics_port: int = DEFAULT_METRICS_PORT,
    ready_timeout: Annotated[float, typer.Option(help="seconds to wait for Triton")] = 300.0,
) -> None:
    """Start Triton (CPU, the committed model repository) and the gateway; stop both on exit."""
    from service.triton_server import TritonError, TritonOptions, TritonServer

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
    except TritonError as exc:
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


def bench_tiling(
    variant: str = DEFAULT_VARIANT,
    weights: Annotated[str, typer.Option(help="'shipped', 'random', or a .safetensors path")
                       ] = "shipped",
    threads: int = 2,
) -> None:
    """Tiled vs whole-image inference (PyTorch): max difference, overhead and time per setting."""
    import torch

    from service.tiling_bench import compare, markdown
    from training.models import create_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if weights == "random":
        model = create_model(variant).eval()
    else:
        from training.weights.store import load_model

        model, _ = load_model(variant, None if weights == "shipped" else Path(weights))

    def infer(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    rows = []
    for name, image in _bench_images():
        rows += compare(name, image, infer, model.scale)
        typer.echo(f"{name} done", err=True)
    typer.echo(f"variant {variant}, weights {weights}, torch threads {threads}\n")
    typer.echo(markdown(rows))


def _bench_images() -> list[tuple[str, np.ndarray]]:
    """Photos of several sizes, none a multiple of 4 or 32 on both sides."""
    try:
        import skimage.data as data
    except ImportError:  # the train extra is not installed: a synthetic stand-in
        import numpy as np

        rng = np.random.default_rng(0)
        y, x = np.mgrid[0:300, 0:451]
        base = (np.sin(x / 9.0) * np.cos(y / 13.0) * 100 + 128)[..., None]
        noisy = base + rng.normal(0, 20, (300, 451, 3))
        return [("synthetic", np.clip(noisy, 0, 255).astype(np.uint8))]
    return [("astronaut crop", data.astronaut()[40:277, 100:401]),
            ("chelsea", data.chelsea()), ("coffee", data.coffee())]


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("gateway")(gateway)
    app.command("upscale")(upscale)
    bench_app.command("tiling")(bench_tiling)
