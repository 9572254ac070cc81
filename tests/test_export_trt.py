"""TensorRT: profile shapes and plan naming on any machine; the engine build itself on a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from export.trt_build import resolve_output
from export.trt_plan import (
    cc_model_filenames,
    default_timing_cache,
    parse_plan_filename,
    plan_filename,
    short_trt_version,
    tile_profile,
)


def test_profile_comes_from_tile_and_max_batch() -> None:
    p = tile_profile(tile=192, max_batch=8, min_side=32)
    assert p.name == "input"
    assert p.min == (1, 3, 32, 32)
    assert p.opt == (8, 3, 192, 192)  # full batches of gateway tiles: what TensorRT tunes for
    assert p.max == (8, 3, 192, 192)
    with pytest.raises(ValueError):
        tile_profile(tile=64, max_batch=8, min_side=96)
    with pytest.raises(ValueError):
        tile_profile(tile=64, max_batch=0)


@pytest.mark.parametrize(("cc", "version", "name"), [
    ("8.6", "10.5.0.18", "model.sm86.trt10.5.plan"),
    ("8.7", "8.6.2", "model.sm87.trt8.6.plan"),
    ("10.0", "10.7", "model.sm100.trt10.7.plan"),
])
def test_plan_name_carries_compute_capability_and_trt_version(cc: str, version: str, name: str) -> None:
    assert plan_filename(cc, version) == name
    assert parse_plan_filename(name) == (cc, short_trt_version(version))


def test_plan_name_rejects_garbage() -> None:
    assert parse_plan_filename("model.plan") is None
    assert parse_plan_filename("model.onnx") is None
    with pytest.raises(ValueError):
        plan_filename("sm86", "10.5")
    with pytest.raises(ValueError):
        short_trt_version("ten")


def test_cc_model_filenames_and_output_resolution(tmp_path: Path) -> None:
    assert cc_model_filenames(["7.5", "9.0"], "10.5") == {
        "7.5": "model.sm75.trt10.5.plan", "9.0": "model.sm90.trt10.5.plan"}
    assert resolve_output(tmp_path, "8.9", "10.5") == tmp_path / "model.sm89.trt10.5.plan"
    assert resolve_output(tmp_path / "x.plan", "8.9", "10.5") == tmp_path / "x.plan"


def test_timing_cache_is_per_gpu_and_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    want = tmp_path / "imdsr" / "tensorrt" / "timing.sm86.trt10.5.cache"
    assert default_timing_cache("8.6", "10.5.1") == want
    assert default_timing_cache("8.6", "10.5") != default_timing_cache("8.9", "10.5")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_cli_says_clearly_when_tensorrt_is_missing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    res = CliRunner().invoke(app, ["export", "trt", "--onnx", str(onnx), "--tile", "64",
                                   "--max-batch", "2", "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert "TensorRT is not installed" in res.output


@pytest.mark.gpu(tensorrt=True)
def test_engine_builds_and_matches_pytorch(variant_weights, tmp_path: Path) -> None:
    import tensorrt as trt
    import torch

    from export.onnx_export import export_onnx, load_model
    from export.trt_build import BuildRequest, build_engine

    onnx = export_onnx("c4nla", variant_weights["c4nla"], tmp_path / "model.onnx").path
    cache = tmp_path / "timing.cache"
    res = build_engine(BuildRequest(onnx, tile_profile(64, 2), timing_cache=cache), tmp_path)
    assert res.plan.name == plan_filename(res.compute_capability, trt.__version__)
    assert cache.stat().st_size > 0
    # A second build reuses the timing cache.
    build_engine(BuildRequest(onnx, tile_profile(64, 2), timing_cache=cache), tmp_path / "again.plan")

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(res.plan.read_bytes())
    context = engine.create_execution_context()
    x = torch.rand(2, 3, 45, 61)  # odd size inside the profile
    context.set_input_shape("input", tuple(x.shape))
    x_gpu = x.cuda().contiguous()
    y_gpu = torch.empty(tuple(context.get_tensor_shape("output")), device="cuda")
    context.set_tensor_address("input", x_gpu.data_ptr())
    context.set_tensor_address("output", y_gpu.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    model, _ = load_model("c4nla", variant_weights["c4nla"])
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(y_gpu.cpu().numpy(), ref, atol=1e-3)
