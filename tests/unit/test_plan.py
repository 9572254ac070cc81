"""The request plan (service/plan.py), without HTTP or a Triton: format, quality, tile, cost, cache
key, and the refusals it raises before any work."""

from __future__ import annotations

import numpy as np
import pytest

from imdsr.imaging import codec
from imdsr.imaging.codec import OutputFormat
from imdsr.imaging.pipeline import AlphaMode
from imdsr.imaging.tiling import TilingRule
from imdsr.imaging.windows import WindowLimits
from service import errors
from service.model_traits import ModelTraits
from service.plan import UpscalePlan, cache_key, choose_format, plan_upscale, quality_for
from service.schemas import UpscaleOptions
from service.settings import Settings

# Qualities no format has by default, so a test sees which setting a format took.
SETTINGS = Settings(jpeg_quality=71, webp_quality=72, avif_quality=73)
IMDECEPTION = ModelTraits("imdeception_c16nla", WindowLimits(max_side=320), TilingRule(), "w1")
RLFN = ModelTraits("rlfn", WindowLimits(max_side=1024, min_side=15),
                   TilingRule(context=30, align=6, min_side=15, whole_up_to=1024), "w2")


def _picture(h: int, w: int, source: str = "PNG", alpha: bool = False,
             dtype: type = np.uint8) -> codec.Picture:
    return codec.Picture(np.zeros((h, w, 3), dtype), np.zeros((h, w), dtype) if alpha else None,
                         False, source)


def _plan(picture: codec.Picture, traits: ModelTraits = IMDECEPTION, settings: Settings = SETTINGS,
          frames: int = 1, accept: str | None = None, rate: float = 0.3,
          **options: object) -> UpscalePlan:
    return plan_upscale(UpscaleOptions.model_validate(options), settings, traits, picture,
                        model="c16nla", frames=frames, accept=accept, rate=rate)


def test_a_format_of_the_other_kind_is_a_422_naming_this_kind_s() -> None:
    from imdsr.video.formats import VideoFormat
    from service.plan import format_of_kind

    assert format_of_kind(None, OutputFormat) is None
    assert format_of_kind(OutputFormat.PNG, OutputFormat) is OutputFormat.PNG
    assert format_of_kind(VideoFormat.WEBM, VideoFormat) is VideoFormat.WEBM
    with pytest.raises(errors.InvalidParameterError) as picture:
        _plan(_picture(40, 50), format="mp4")  # a clip's format on a picture
    assert "mp4 is a video format; a picture takes png" in str(picture.value.detail)
    with pytest.raises(errors.InvalidParameterError) as clip:
        format_of_kind(OutputFormat.PNG, VideoFormat)
    assert "png is a picture format; a video takes mp4, webm" in str(clip.value.detail)


@pytest.mark.parametrize(("requested", "accept", "source", "frames", "expected"), [
    (OutputFormat.PNG, "image/webp", "JPEG", 1, OutputFormat.PNG),         # explicit wins
    (None, "image/avif,image/webp;q=0.8", "PNG", 1, OutputFormat.AVIF),    # then Accept's best
    (None, "image/*,*/*;q=0.8", "JPEG", 1, OutputFormat.JPEG),             # wildcards name none
    (None, None, "JPEG", 1, OutputFormat.JPEG),                            # the input's family
    (None, None, "BMP", 1, OutputFormat.PNG),
    (None, None, "GIF", 3, OutputFormat.WEBP),                             # an animation: WebP
    (None, "image/png", "GIF", 3, OutputFormat.PNG),                       # or APNG when asked
])
def test_format_choice(requested: OutputFormat | None, accept: str | None, source: str, frames: int,
                       expected: OutputFormat) -> None:
    assert choose_format(requested, accept, source, frames) is expected


@pytest.mark.parametrize(("requested", "accept"), [(OutputFormat.JPEG, None), (None, "image/avif")])
def test_an_animation_into_a_single_picture_format_is_422(requested: OutputFormat | None,
                                                          accept: str | None) -> None:
    with pytest.raises(errors.InvalidParameterError, match=r"cannot hold an animation \(3 frames\)"):
        choose_format(requested, accept, "GIF", 3)


@pytest.mark.parametrize(("fmt", "expected"), [(OutputFormat.JPEG, 71), (OutputFormat.WEBP, 72),
                                               (OutputFormat.AVIF, 73), (OutputFormat.PNG, None)])
def test_quality_per_format_and_the_request_s_own(fmt: OutputFormat, expected: int | None) -> None:
    assert quality_for(fmt, None, SETTINGS) == expected
    assert quality_for(fmt, 55, SETTINGS) == 55
    assert _plan(_picture(40, 50), format=fmt.value).quality == expected


def test_plan_carries_the_request_s_choices_and_the_settings_defaults() -> None:
    plan = _plan(_picture(40, 50, "JPEG"), outscale=2, alpha="bicubic", metadata="strip")
    assert plan.format is OutputFormat.JPEG and plan.quality == 71
    assert plan.final.size == (80, 100) and plan.frames == 1
    assert plan.alpha is AlphaMode.BICUBIC and plan.metadata is codec.Metadata.STRIP
    assert plan.png is SETTINGS.png and plan.in_flight == SETTINGS.tiles_in_flight
    assert plan.eight_bit and plan.model == "c16nla" and plan.rate == 0.3
    assert _plan(_picture(40, 50), png="small").png is codec.PngMode.SMALL
    assert not _plan(_picture(40, 50, dtype=np.uint16)).eight_bit


def test_tile_choice() -> None:
    big = _picture(1500, 1500)
    assert _plan(big).tile == 256  # the configured tile: its 320-px windows fit
    assert _plan(big, tile=128).tile == 128
    assert _plan(big, settings=Settings(tile=512)).tile == 256  # shrunk to what the model takes
    assert _plan(big, traits=RLFN, tile=256).tile == 252  # rounded down to RLFN's alignment
    # RLFN runs it whole: 1000 px padded to its 1024-px bucket, one tile (rounded to 6) covers it
    assert _plan(_picture(700, 1000), traits=RLFN, tile=64).tile == 1026
    assert _plan(big, settings=Settings(tile_context=64)).rule.context == 64


def test_a_tile_too_large_for_the_model_is_422_naming_the_largest() -> None:
    with pytest.raises(errors.InvalidParameterError) as refused:
        _plan(_picture(1500, 1500), tile=288)
    assert refused.value.status == 422
    (detail,) = refused.value.detail
    assert detail["loc"] == ["query", "tile"] and detail["max_tile"] == 256
    assert "up to 320 px" in detail["msg"]


def test_a_model_whose_window_cannot_hold_its_context_is_503() -> None:
    with pytest.raises(errors.ModelNotReadyError, match="IMDSR_TILE_CONTEXT") as refused:
        _plan(_picture(1500, 1500), settings=Settings(tile_context=160))
    assert refused.value.status == 503


def test_outputs_over_the_limits_are_413() -> None:
    with pytest.raises(errors.ImageTooLargeError, match="limit is 640000"):
        _plan(_picture(201, 200), settings=Settings(max_output_pixels=640_000))  # x4: 643,200 px
    _plan(_picture(200, 200), settings=Settings(max_output_pixels=640_000))
    with pytest.raises(errors.ImageTooLargeError, match="limit is 320000"):  # shared by 2 frames
        _plan(_picture(200, 200), settings=Settings(max_output_pixels=640_000), frames=2)
    # WebP holds at most 16383 px a side: 4100 x 4 is refused, as PNG it is fine.
    with pytest.raises(errors.ImageTooLargeError, match="webp holds at most 16383"):
        _plan(_picture(1, 4100), format="webp")
    assert _plan(_picture(1, 4100), format="png").final.size == (4, 16400)


def test_cost_counts_frames_and_an_alpha_plane_through_the_model() -> None:
    still = _plan(_picture(300, 300)).cost
    animated = _plan(_picture(300, 300), frames=3).cost
    assert animated.seconds == pytest.approx(3 * still.seconds)
    assert animated.memory == 3 * still.memory
    assert animated.seconds_per_tile == pytest.approx(still.seconds_per_tile)  # per frame's tile
    assert still.seconds == pytest.approx(still.output_mpx * 0.3)
    through = _plan(_picture(300, 300, alpha=True))
    bicubic = _plan(_picture(300, 300, alpha=True), alpha="bicubic")
    assert through.alpha_through_model and not bicubic.alpha_through_model
    assert through.cost.seconds == pytest.approx(2 * bicubic.cost.seconds)
    assert bicubic.cost.memory > still.memory  # the alpha plane is held either way
    assert _plan(_picture(300, 300), rate=0.6).cost.seconds == pytest.approx(2 * still.seconds)


def test_cache_key_follows_what_shapes_the_output() -> None:
    body = b"input bytes"

    def key(accept: str | None = None, model: str = "c16nla", weights: str = "w1",
            **options: object) -> tuple[str, dict[str, str]]:
        found = cache_key(body, UpscaleOptions.model_validate(options), model, accept, weights,
                          "private, max-age=60")
        return found.tag, found.headers

    tag, headers = key()
    assert headers == {"ETag": tag, "Cache-Control": "private, max-age=60", "Vary": "Accept"}
    assert key(tile=64)[0] == tag  # the tile does not change the bytes
    assert key(accept="image/*")[0] == tag  # a wildcard chooses no format
    assert len({tag, key(accept="image/webp")[0], key(model="c4")[0], key(weights="w2")[0],
                key(outscale=2)[0]}) == 5
    explicit, headers = key(format="png")
    assert "Vary" not in headers  # an explicit format: the Accept header plays no part
    assert key(format="png", accept="image/webp")[0] == explicit != tag
