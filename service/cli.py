"""``imdsr serve`` (Triton + gateway), ``imdsr gateway``, ``imdsr upscale``.

Heavy imports (uvicorn, the app) happen inside the commands, so that ``imdsr --help`` stays fast;
nothing here imports torch, training or export. The choices of ``imdsr upscale`` are the enums of
``POST /upscale`` themselves (codec, geometry, pipeline: numpy and Pillow, ~50 ms at start-up), so
they cannot drift from what the gateway takes.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from imdsr.contract import (
    DEFAULT_GATEWAY_PORT,
    DEFAULT_GRPC_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    DEFAULT_VARIANT,
)
from imdsr.imaging.codec import FORMATS, Metadata, OutputFormat, PngMode
from imdsr.imaging.geometry import Fit
from imdsr.imaging.pipeline import AlphaMode
from imdsr.imaging.tiling import ALIGN
from imdsr.settings import ClientSettings, LauncherSettings
from imdsr.video.formats import MAX_CRF, VideoFormat
from triton_host.cli import DEFAULT_REPO, RepoOpt
from triton_host.launcher import RestartPolicy  # stdlib only

if TYPE_CHECKING:
    import uvicorn


# Loopback unless told otherwise: a container (Dockerfile, k8s/) passes --host 0.0.0.0.
HostOpt = Annotated[str, typer.Option(help="gateway bind address (0.0.0.0: every interface)")]
PortOpt = Annotated[int, typer.Option(help="gateway port")]
_POLICY = RestartPolicy()  # the default of --ready-timeout


def _gateway_server(host: str, port: int, triton_url: str | None = None) -> uvicorn.Server:
    import uvicorn

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(triton_url=triton_url) if triton_url else Settings()
    typer.echo(f"imdsr gateway: http://{host}:{port}  (Triton gRPC {settings.triton_url}, "
               f"docs at /docs)")
    # uvicorn handles SIGINT/SIGTERM: stops accepting, finishes requests, runs the lifespan end.
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="info",
                            timeout_graceful_shutdown=30)
    return uvicorn.Server(config)


def _run_gateway(host: str, port: int, triton_url: str | None = None) -> None:
    server = _gateway_server(host, port, triton_url)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # as uvicorn.run: the server never started


def _log_supervision() -> None:
    """The supervisor's messages (triton_host.launcher logs to "imdsr.triton") on stderr."""
    logger = logging.getLogger("imdsr.triton")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("imdsr serve [%(asctime)s]: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = DEFAULT_GATEWAY_PORT,
    repo: RepoOpt = DEFAULT_REPO,
    triton_http_port: int = DEFAULT_HTTP_PORT,
    triton_grpc_port: int = DEFAULT_GRPC_PORT,
    triton_metrics_port: int = DEFAULT_METRICS_PORT,
    ready_timeout: Annotated[float, typer.Option(
        help="seconds Triton may take to be ready, at each start")] = _POLICY.ready_timeout_s,
    triton_log: Annotated[Path | None, typer.Option(
        help="append Triton's output to this file (default: this terminal); its last lines "
             "are repeated when Triton dies")] = None,
    triton_max_failures: Annotated[int, LauncherSettings.option("triton_max_failures")
                                   ] = LauncherSettings.default("triton_max_failures"),
    triton_failure_window: Annotated[float, LauncherSettings.option("triton_failure_window_s")
                                     ] = LauncherSettings.default("triton_failure_window_s"),
    triton_backoff: Annotated[float, LauncherSettings.option("triton_backoff_s")
                              ] = LauncherSettings.default("triton_backoff_s"),
    triton_backoff_max: Annotated[float, LauncherSettings.option("triton_backoff_max_s")
                                  ] = LauncherSettings.default("triton_backoff_max_s"),
) -> None:
    """Start Triton (CPU, the committed model repository) and the gateway; stop both on exit.

    Triton is supervised: when it dies it is restarted on the same ports after a backoff, and
    after --triton-max-failures failures within --triton-failure-window seconds both stop and
    the command exits with status 1.
    """
    from triton_host.launcher import TritonLaunchError, TritonOptions, TritonSupervisor

    _log_supervision()
    gateways: list[uvicorn.Server] = []  # the gateway, once it runs
    stop_signals: list[int] = []

    def on_give_up(_reason: str) -> None:  # from the supervisor's thread
        for server in gateways:
            server.should_exit = True  # uvicorn's main loop checks it every 0.1 s

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Before the gateway runs, and again once uvicorn (which handles them while it runs) has
        # shut down and re-raised what it caught: a stop, never a crash.
        stop_signals.append(signum)

    policy = RestartPolicy(backoff_s=triton_backoff, backoff_max_s=triton_backoff_max,
                           max_failures=triton_max_failures, failure_window_s=triton_failure_window,
                           ready_timeout_s=ready_timeout)
    # Triton listens on loopback only: clients go through the gateway, which enforces limits.
    options = TritonOptions(repo=repo, http_port=triton_http_port, grpc_port=triton_grpc_port,
                            metrics_port=triton_metrics_port, host="127.0.0.1")
    try:
        supervisor = TritonSupervisor(options, policy, log_path=triton_log, on_give_up=on_give_up)
    except TritonLaunchError as exc:
        typer.echo(f"imdsr serve: {exc}", err=True)
        raise typer.Exit(1) from exc
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    typer.echo(f"imdsr serve: starting Triton on {repo} (restarted when it dies; gives up after "
               f"{policy.max_failures} failures within {policy.failure_window_s:g} s)")
    try:
        try:
            supervisor.start()
        except TritonLaunchError as exc:
            typer.echo(f"imdsr serve: {exc}", err=True)
            raise typer.Exit(1) from exc
        while not supervisor.wait_ready(0.2):
            if stop_signals or supervisor.gave_up.is_set() or not supervisor.running:
                break
        if supervisor.ready.is_set() and not stop_signals:
            typer.echo(f"imdsr serve: Triton ready (grpc {supervisor.grpc_url}, "
                       f"metrics {supervisor.metrics_url})")
            server = _gateway_server(host, port, supervisor.grpc_url)
            gateways.append(server)
            if supervisor.gave_up.is_set():  # gave up before the line above
                server.should_exit = True
            server.run()
            if not server.started and not supervisor.gave_up.is_set():
                raise typer.Exit(3)
    finally:
        typer.echo("imdsr serve: stopping Triton")
        supervisor.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if supervisor.gave_up.is_set():
        typer.echo(f"imdsr serve: gave up on Triton, gateway stopped: {supervisor.give_up_reason}",
                   err=True)
        raise typer.Exit(1)


def gateway(host: HostOpt = "127.0.0.1", port: PortOpt = DEFAULT_GATEWAY_PORT) -> None:
    """Run the gateway alone, against the Triton at IMDSR_TRITON_URL (gRPC host:port)."""
    _run_gateway(host, port)


# Kept equal to service.client.DEFAULT_JOBS_ABOVE_MPX (whose module is too slow to import for
# `imdsr --help`); tests/unit/test_client_jobs.py holds the two together.
DEFAULT_JOBS_ABOVE_MPX = 4.0

# The bounds of POST /upscale's numbers (service/schemas.py UpscaleOptions; its pydantic import is
# too slow for `imdsr --help`): tests/unit/test_upscale_vocabulary.py checks them against it.
MAX_SIDE_PX = 65535
MAX_OUTSCALE = 16.0
MAX_TILE = 2048
# One --format for both kinds, as the gateway's one format parameter (service/schemas.py).
FORMAT_CHOICES = [f.value for f in (*OutputFormat, *VideoFormat)]
# "JPEG/WebP/AVIF": the formats --quality applies to
_LOSSY = "/".join(spec.label for spec in FORMATS.values() if spec.quality is not None)


def _positive(value: float | None) -> float | None:
    if value is not None and not value > 0:  # typer's ranges are closed: 0 itself would pass
        raise typer.BadParameter(f"{value} is not greater than 0")
    return value


def _format_choice(value: str | None) -> str | None:
    """``--format``: a picture's format or a clip's (one option, as the gateway's one
    parameter), in any case."""
    if value is not None and value.lower() not in FORMAT_CHOICES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(FORMAT_CHOICES)}")
    return value and value.lower()


def _tile_multiple(value: int | None) -> int | None:
    if value is not None and value % ALIGN:
        raise typer.BadParameter(f"{value} is not a multiple of {ALIGN}")
    return value


def upscale(
    url: Annotated[str, typer.Argument(help="gateway base URL, e.g. http://127.0.0.1:8080")],
    paths: Annotated[list[Path], typer.Argument(
        exists=True, show_default=False, metavar="PATH",
        help="images, clips and folders (a folder: every png/jpg/jpeg/webp/tif/tiff/bmp/gif/avif/"
             "heic/heif image and mp4/m4v/mov/mkv/webm clip in it)")],
    output: Annotated[Path, typer.Option(
        "-o", "--output", help="output folder: <stem>_x4.<ext>, keeping a folder's structure; "
        "with one input file, a path with an image suffix is the output file itself")],
    recursive: Annotated[bool, typer.Option("-r", "--recursive", help="folders' subfolders too")] = False,
    in_flight: Annotated[int, typer.Option("-j", "--in-flight", min=1, max=64,
                                           help="files in flight at once")] = 4,
    use_jobs: Annotated[bool, typer.Option(
        "--jobs", help=f"send large files through the gateway's jobs (POST /jobs): a progress "
        f"bar per file from its tiles, and Ctrl-C cancels them; large: an x4 output of "
        f"{DEFAULT_JOBS_ABOVE_MPX:g} megapixels or more (all frames), see --jobs-above-mpx. "
        "Smaller files go to POST /upscale, quicker for them")] = False,
    jobs_above_mpx: Annotated[float | None, typer.Option(
        min=0.0, help="implies --jobs, for files whose x4 output (width x height x 16, times "
        "the frames) is at least this many megapixels; 0: every file")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite",
        help="redo outputs already there (default: skip any that exists and is not empty)")] = False,
    model: Annotated[str | None, typer.Option(help=f"variant (server default: "
                                                   f"{DEFAULT_VARIANT})")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", callback=_format_choice, metavar="FORMAT",
        help=f"output format: pictures {'|'.join(OutputFormat)}, clips {'|'.join(VideoFormat)} "
             "(each file takes the one of its kind; default: from -o's suffix for one file, "
             "else the gateway's: the input's family, mp4 for a clip)")] = None,
    width: Annotated[int | None, typer.Option(
        min=1, max=MAX_SIDE_PX, help="final width in px (alone: the aspect ratio is kept)")] = None,
    height: Annotated[int | None, typer.Option(
        min=1, max=MAX_SIDE_PX, help="final height in px (alone: the aspect ratio is kept)")] = None,
    fit: Annotated[Fit | None, typer.Option(
        case_sensitive=False, help="with --width and --height: inside (within the box), cover "
        "(fills it, centred crop), fill (stretched to it); server default: inside")] = None,
    outscale: Annotated[float | None, typer.Option(
        max=MAX_OUTSCALE, callback=_positive, help="final scale, e.g. 2 or 3.5")] = None,
    quality: Annotated[int | None, typer.Option(
        min=1, max=100, help=f"{_LOSSY} quality (server default: its own per format)")] = None,
    png: Annotated[PngMode | None, typer.Option(
        case_sensitive=False, help="PNG compression: fast (server default) or small (the "
        "smallest file; slow)")] = None,
    metadata: Annotated[Metadata | None, typer.Option(
        case_sensitive=False, help="keep (server default): EXIF, XMP and ICC where the format "
        "holds them; strip: the ICC profile only")] = None,
    alpha: Annotated[AlphaMode | None, typer.Option(
        case_sensitive=False, help="transparency: through the network (model, server default: "
        "sharp edges, twice the work) or bicubic")] = None,
    crf: Annotated[int | None, typer.Option(
        min=0, max=MAX_CRF, help="clips: the encoder's CRF, lower is better and larger (server "
        "default: its own, else H.264 20, VP9 32)")] = None,
    tile: Annotated[int | None, typer.Option(
        min=ALIGN, max=MAX_TILE, callback=_tile_multiple,
        help=f"tile core in input px, a multiple of {ALIGN} (server default: its own); one too "
             "large for the model fails with the largest that fits")] = None,
    api_key: Annotated[str | None, ClientSettings.option("api_key")] = ClientSettings.default("api_key"),
    retries: Annotated[int, typer.Option(
        min=0, help="retries of a 429/503 answer, each after its Retry-After (at most 30 s)")] = 5,
) -> None:
    """Upscale images, clips and folders through the HTTP API, several requests at a time.

    Clips (MP4, MOV, MKV, WebM) always go through the gateway's jobs, a bar counting frames;
    their results keep the sound (<stem>_x4.mp4, or .webm with --format webm).

    Outputs that exist and are not empty are skipped (--overwrite redoes them); the summary
    names every failure with the gateway's reason, and the exit status is 1 if any failed.
    With --jobs, Ctrl-C cancels the jobs not yet finished (DELETE /jobs/{id}) and exits with
    status 130; the outputs already written stay.
    """
    from service.client import Interrupted, UpscaleParams, is_output_file, upscale_paths

    single_file = len(paths) == 1 and paths[0].is_file()
    if is_output_file(output) and not single_file:
        raise typer.BadParameter(f"{output} names a file, but the inputs are not one file: "
                                 "give a folder", param_hint="'-o' / '--output'")
    params = UpscaleParams(model=model, format=fmt, quality=quality, png=png,
                           outscale=outscale, width=width, height=height, fit=fit,
                           metadata=metadata, alpha=alpha, crf=crf, tile=tile, api_key=api_key)
    if jobs_above_mpx is None and use_jobs:
        jobs_above_mpx = DEFAULT_JOBS_ABOVE_MPX
    try:
        summary = upscale_paths(url, paths, output, params, recursive=recursive,
                                in_flight=in_flight, overwrite=overwrite, retries=retries,
                                jobs_above_mpx=jobs_above_mpx)
    except Interrupted as stop:
        ids = f" ({', '.join(stop.cancelled)})" if stop.cancelled else ""
        typer.echo(f"imdsr upscale: interrupted; cancelled {len(stop.cancelled)} job(s){ids}",
                   err=True)
        for line in stop.not_cancelled:
            typer.echo(f"  not cancelled: {line}", err=True)
        raise typer.Exit(130) from None
    if len(summary.done) == 1 and not summary.skipped and not summary.failed:
        result = summary.done[0]
        h = result.headers
        typer.echo(f"{result.source} ({h.get('x-input-size')}) -> {result.path} "
                   f"({h.get('x-output-size')}, {result.content_type}, model {h.get('x-model')}, "
                   f"{h.get('x-tiles')} tiles; {h.get('server-timing')})")
    total = len(summary.done) + len(summary.skipped) + len(summary.failed)
    if total == 0:
        hint = "" if recursive or single_file else " (-r: subfolders too)"
        typer.echo(f"imdsr upscale: no images found{hint}", err=True)
        return
    note = " (already there; --overwrite redoes them)" if summary.skipped else ""
    typer.echo(f"imdsr upscale: {summary.line()}{note} -> {output}")
    for failure in summary.failed:
        typer.echo(f"  failed: {failure.source}: {failure.reason}", err=True)
    if not summary.ok:
        raise typer.Exit(1)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("gateway")(gateway)
    app.command("upscale")(upscale)
