"""The plan of one ``POST /upscale``: every decision the request needs, made before any work.

``plan_upscale`` takes the options, the settings, the model's traits and the decoded picture and
returns the output format and its quality, the final size, the tile and tiling rule, and what
admitting the request costs; every refusal it can get before the model runs (413, 422, 503) is
raised there. The cache key is planned earlier, from the options and the encoded input alone
(``cache_key``), so that a client that already has the answer gets its 304 without a decode.
The handler (service/api.py) then admits and runs the plan (service/upscaling.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from imdsr.contract import SCALE
from imdsr.imaging import codec
from imdsr.imaging.codec import Metadata, OutputFormat, PngMode
from imdsr.imaging.geometry import FinalSize, final_size
from imdsr.imaging.pipeline import AlphaMode
from imdsr.imaging.tiling import TilingRule, plan_tiles
from imdsr.imaging.windows import TileTooLargeError, WindowTooSmallError, choose_tile
from imdsr.video.formats import VideoFormat
from service import errors
from service.admission import Cost, estimate
from service.conventions import etag
from service.metrics import REJECTED
from service.model_traits import ModelTraits
from service.schemas import VIDEO_ONLY, UpscaleOptions
from service.settings import Settings

F = TypeVar("F", OutputFormat, VideoFormat)


@dataclass(frozen=True)
class CacheKey:
    """The strong ETag of an answer and the caching headers that go with it (304s included)."""

    tag: str
    headers: dict[str, str]


@dataclass(frozen=True)
class UpscalePlan:
    """What one request will do; ``cost`` is for the whole request (every frame, alpha too)."""

    model: str
    format: OutputFormat
    quality: int | None    # None: the format has no quality (PNG)
    png: PngMode
    metadata: Metadata
    alpha: AlphaMode
    final: FinalSize
    frames: int            # 1 for a still picture
    tile: int
    rule: TilingRule
    in_flight: int         # tiles of this request in Triton at once
    eight_bit: bool        # the answer may come back as UINT8 (an 8-bit source)
    rate: float            # seconds per output megapixel the cost was estimated at
    alpha_through_model: bool
    cost: Cost


def cache_key(body: bytes, options: UpscaleOptions, model: str, accept: str | None, weights: str,
              cache_control: str) -> CacheKey:
    """The same input, options and weights give the same bytes: a strong tag. Without an
    explicit format the Accept header chooses it, so its choice is part of the key (and Vary)."""
    chosen = None if options.format else codec.from_accept(accept)
    tag = etag(body, {**options.output_options(), "model": model, "accept": chosen}, weights)
    headers = {"ETag": tag, "Cache-Control": cache_control}
    if options.format is None:
        headers["Vary"] = "Accept"
    return CacheKey(tag, headers)


def refuse_options_of(options: UpscaleOptions, names: tuple[str, ...], kind: str, other: str
                      ) -> None:
    """A 422 naming each of ``names`` that ``options`` sets: options of the ``other`` kind of
    input (a clip's on a picture, or the reverse), which would otherwise do nothing."""
    given = [name for name in names if getattr(options, name) is not None]
    if given:
        raise errors.InvalidParameterError(
            [{"loc": ["query", name], "msg": f"{name} is for {other}, and this upload is {kind}"}
             for name in given])


def format_of_kind(requested: OutputFormat | VideoFormat | None, kind: type[F]) -> F | None:
    """``format=`` for an upload of ``kind``'s formats (a picture's or a clip's); the other
    kind's is a 422 naming the ones this upload takes (``format`` takes both vocabularies)."""
    if requested is None or isinstance(requested, kind):
        return requested
    this, other = ("a picture", "video") if kind is OutputFormat else ("a video", "picture")
    raise errors.InvalidParameterError(
        [{"loc": ["query", "format"], "msg": f"{requested.value} is a {other} format; {this} "
          f"takes {', '.join(kind)}"}])


def choose_format(requested: OutputFormat | None, accept: str | None, source_format: str,
                  frames: int = 1) -> OutputFormat:
    """The request's format, else the Accept header's, else the input's family (WebP for an
    animation); 422 for an animation into a format that holds only one picture."""
    animated = frames > 1
    fmt = (requested or codec.from_accept(accept)
           or (OutputFormat.WEBP if animated else codec.default_format(source_format)))
    if animated and fmt not in codec.ANIMATED_FORMATS:
        raise errors.InvalidParameterError(
            f"{fmt.value} cannot hold an animation ({frames} frames): ask for webp or png")
    return fmt


def quality_for(fmt: OutputFormat, requested: int | None, settings: Settings) -> int | None:
    """The request's quality, else the gateway's default for ``fmt`` (None: PNG has none)."""
    return requested or settings.quality_for(fmt)


def final_for(picture: codec.Picture, options: UpscaleOptions, limit: int) -> FinalSize:
    """Where the picture ends up, or 413; the x4 intermediate counts against the limit too, as it
    is what sits in memory."""
    h, w = picture.height, picture.width
    final = final_size(h, w, outscale=options.outscale, target_width=options.width,
                       target_height=options.height, fit=options.fit)
    biggest = max(final.resize[0] * final.resize[1], h * w * SCALE * SCALE)
    if biggest > limit:
        REJECTED.labels(reason="output_pixels").inc()
        raise errors.ImageTooLargeError(
            f"output would be {biggest} pixels; the limit is {limit}")
    return final


def check_format_fits(fmt: OutputFormat, final: tuple[int, int]) -> None:
    """Refuse before any work an output the format cannot hold (WebP: 16383 px a side)."""
    limit = codec.MAX_SIDE.get(fmt)
    if limit is not None and max(final) > limit:
        REJECTED.labels(reason="format_side").inc()
        raise errors.ImageTooLargeError(
            f"the output would be {final[1]}x{final[0]}; {fmt.value} holds at most {limit} px a side: "
            "ask for png, or a smaller outscale, width or height")


def tile_for(picture: codec.Picture, requested: int | None, default: int, traits: ModelTraits,
             rule: TilingRule) -> int:
    """``choose_tile`` for the gateway: a requested tile too large for the model is the client's
    422 (naming the largest that fits), a model whose window cannot hold its context a 503."""
    try:
        return choose_tile(rule, traits.limits, picture.height, picture.width, requested=requested,
                           default=default)
    except TileTooLargeError as exc:
        raise errors.InvalidParameterError(
            [{"loc": ["query", "tile"], "msg": str(exc), "max_tile": exc.largest}]) from exc
    except WindowTooSmallError as exc:
        raise errors.ModelNotReadyError(f"{exc} (IMDSR_TILE_CONTEXT)") from exc


def frame_cost(picture: codec.Picture, tile: int, rule: TilingRule, final: FinalSize, rate: float,
               alpha_through_model: bool, in_flight: int) -> Cost:
    """What admitting one frame commits: Triton seconds and gateway bytes (service/admission.py)."""
    tiles = plan_tiles(picture.height, picture.width, tile, rule.context, rule.align)
    if alpha_through_model:
        rate *= 2  # the alpha plane goes through the network too
    channels = 3 + (picture.alpha is not None)
    return estimate(tiles, channels, picture.bit_depth // 8, final.resize[0] * final.resize[1], rate,
                    in_flight, max(tile + 2 * rule.context, rule.min_side))


def plan_upscale(options: UpscaleOptions, settings: Settings, traits: ModelTraits,
                 picture: codec.Picture, *, model: str, frames: int, accept: str | None,
                 rate: float) -> UpscalePlan:
    """The plan of upscaling ``picture`` (the first of ``frames`` when animated) with ``model``
    at ``rate`` seconds per output megapixel, or the refusal, in the order the checks cost."""
    refuse_options_of(options, VIDEO_ONLY, "a picture", "video")
    final = final_for(picture, options, settings.max_output_pixels // frames)
    fmt = choose_format(format_of_kind(options.format, OutputFormat), accept, picture.source_format, frames)
    check_format_fits(fmt, final.size)
    rule = traits.with_context(settings.tile_context)
    tile = tile_for(picture, options.tile, settings.tile, traits, rule)
    alpha_through_model = picture.alpha is not None and options.alpha is AlphaMode.MODEL
    one = frame_cost(picture, tile, rule, final, rate, alpha_through_model, settings.tiles_in_flight)
    return UpscalePlan(
        model=model, format=fmt, quality=quality_for(fmt, options.quality, settings),
        png=options.png or settings.png, metadata=options.metadata, alpha=options.alpha,
        final=final, frames=frames, tile=tile, rule=rule, in_flight=settings.tiles_in_flight,
        eight_bit=picture.bit_depth == 8, rate=rate, alpha_through_model=alpha_through_model,
        cost=replace(one, seconds=one.seconds * frames, memory=one.memory * frames))
