"""`imdsr infer`: local upscaling of real image files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata
from typer.testing import CliRunner

from imdsr.cli import app
from training.models import create_model
from training.weights.store import WeightsMeta, save_weights

runner = CliRunner()


def test_infer_writes_an_image_exactly_4x_the_input(tmp_path: Path) -> None:
    photo = skdata.chelsea()[100:137, 150:203]  # a real photo, 53x37: not a multiple of 4 or 32
    src = tmp_path / "cat.jpg"
    Image.fromarray(photo).save(src, quality=95)
    weights = save_weights(tmp_path / "w.safetensors", create_model("c4").state_dict(),
                           WeightsMeta("c4", 4, "test"))
    result = runner.invoke(app, ["infer", "--variant", "c4", "--weights", str(weights), str(src),
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / "cat_x4.jpg") as out:  # same family as the input
        assert out.size == (4 * 53, 4 * 37)
        assert out.mode == "RGB"


def test_infer_reports_unreadable_inputs_and_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    weights = save_weights(tmp_path / "w.safetensors", create_model("c4").state_dict(),
                           WeightsMeta("c4", 4, "test"))
    result = runner.invoke(app, ["infer", "--variant", "c4", "--weights", str(weights), str(bad),
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "skip" in result.output and "bad.png" in result.output


def test_infer_refuses_weights_of_another_variant(tmp_path: Path) -> None:
    weights = save_weights(tmp_path / "w.safetensors", create_model("c4").state_dict(),
                           WeightsMeta("c4", 4, "test"))
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(src)
    result = runner.invoke(app, ["infer", "--variant", "c8", "--weights", str(weights), str(src),
                                 "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds variant 'c4', not 'c8'" in result.output


def test_tiled_and_whole_image_inference_agree_within_one_level() -> None:
    import torch

    from training.infer import upscale_array

    torch.manual_seed(0)
    model = create_model("c4nla").eval()
    photo = skdata.astronaut()[:150, :170]
    tiled = upscale_array(model, photo, torch.device("cpu"), tile=64)
    whole = upscale_array(model, photo, torch.device("cpu"), tile=0)
    assert tiled.shape == whole.shape == (600, 680, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_infer_defaults_to_the_shipped_weights_and_beats_bicubic(tmp_path: Path) -> None:
    from imdsr.imaging.metrics import y_psnr
    from imdsr.imaging.resize import downscale, upscale

    def to8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)

    hr = skdata.coffee()[100:196, 200:328]  # 96x128, a multiple of 4
    lr = to8(downscale(hr.astype(np.float64) / 255, 4))
    Image.fromarray(lr).save(tmp_path / "lr.png")
    result = runner.invoke(app, ["infer", "--variant", "c4", str(tmp_path / "lr.png"),
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    sr = np.asarray(Image.open(tmp_path / "out" / "lr_x4.png"))
    bicubic = to8(upscale(lr.astype(np.float64) / 255, 4))
    gain = y_psnr(sr, hr) - y_psnr(bicubic, hr)
    assert gain > 0.3, gain  # measured 4.0 dB on this crop with the shipped c4


def test_infer_keeps_alpha_16_bit_and_icc(tmp_path: Path) -> None:
    """The gateway's pipeline: RGBA stays RGBA, 16-bit PNG stays 16-bit, the ICC profile stays."""
    import imagecodecs
    from PIL import ImageCms

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    rgb16 = rng.integers(0, 65536, (20, 24, 3), dtype=np.uint16)
    (tmp_path / "deep.png").write_bytes(imagecodecs.png_encode(rgb16))
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgba[..., :3]).save(tmp_path / "tagged.jpg", icc_profile=icc)
    weights = save_weights(tmp_path / "w.safetensors", create_model("c4").state_dict(),
                           WeightsMeta("c4", 4, "test"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["infer", "--variant", "c4", "--weights", str(weights),
                                 *(str(tmp_path / n) for n in ("logo.png", "deep.png", "tagged.jpg")),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out / "logo_x4.png") as im:
        assert im.mode == "RGBA" and im.size == (96, 80)
    deep = imagecodecs.png_decode((out / "deep_x4.png").read_bytes())
    assert deep.dtype == np.uint16 and deep.shape == (80, 96, 3)
    with Image.open(out / "tagged_x4.jpg") as im:
        assert im.info.get("icc_profile") == icc


def test_infer_offers_and_writes_every_output_format(tmp_path: Path) -> None:
    from imdsr.imaging.codec import FORMATS, OutputFormat

    wide = {"COLUMNS": "250"}  # one line per option in typer's help box
    help_line = next(line for line in runner.invoke(app, ["infer", "--help"], env=wide).output
                     .splitlines() if "--format" in line)
    assert ", ".join(OutputFormat) in help_line
    refused = runner.invoke(app, ["infer", "x.png", "-o", str(tmp_path), "--format", "gif"], env=wide)
    assert refused.exit_code == 2 and ", ".join(OutputFormat) in refused.output

    src = tmp_path / "cat.png"
    Image.fromarray(skdata.chelsea()[100:116, 150:174]).save(src)
    weights = save_weights(tmp_path / "w.safetensors", create_model("c4").state_dict(),
                           WeightsMeta("c4", 4, "test"))
    for fmt in OutputFormat:
        out = tmp_path / fmt.value
        result = runner.invoke(app, ["infer", "--variant", "c4", "--weights", str(weights),
                                     "--format", fmt.value, str(src), "-o", str(out)])
        assert result.exit_code == 0, result.output
        (written,) = out.iterdir()
        with Image.open(written) as image:
            assert (image.format, image.size) == (FORMATS[fmt].writer, (96, 64))
