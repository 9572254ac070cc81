"""TensorRT: profiles, plan names, version checks and the timing cache on any machine; the engine
build itself on a GPU with TensorRT."""

from __future__ import annotations

import importlib.util
import stat
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from export.trt_build import (
    BuildRequest,
    build_with_trtexec,
    detect_trt_version,
    parse_trtexec_banner,
    trtexec_command,
    versions_match,
)
from export.trt_plan import (
    atomic_write_bytes,
    cc_model_filenames,
    engine_profile,
    parse_plan_filename,
    plan_filename,
    timing_cache_path,
)
from imdsr.imaging.windows import WindowLimits


def test_profile_spans_every_window_the_gateway_sends() -> None:
    p = engine_profile(WindowLimits(max_side=192), max_batch=8)
    assert p.name == "input"
    assert p.min == (1, 3, 1, 1)  # small images go whole: a 21x26 icon must be accepted
    assert p.opt == (8, 3, 192, 192)  # full batches of full windows: what TensorRT tunes for
    assert p.max == (8, 3, 192, 192)
    assert p.admits(1, 21, 26) and p.admits(8, 192, 1) and not p.admits(1, 193, 64)
    with pytest.raises(ValueError):
        engine_profile(WindowLimits(max_side=64), max_batch=0)


@pytest.mark.parametrize(("cc", "version", "name"), [
    ("8.6", "10.5.0.18", "model.sm86.trt10.5.0.18.plan"),
    ("8.7", "10.3.0", "model.sm87.trt10.3.0.plan"),
    ("10.0", "10.7.0.23", "model.sm100.trt10.7.0.23.plan"),
])
def test_plan_name_carries_compute_capability_and_full_trt_version(cc: str, version: str, name: str) -> None:
    assert plan_filename(cc, version) == name
    assert parse_plan_filename(name) == (cc, version)


def test_plan_name_rejects_garbage() -> None:
    assert parse_plan_filename("model.plan") is None
    assert parse_plan_filename("model.sm86.trt10.5.plan") is None  # a minor alone cannot tell builds apart
    with pytest.raises(ValueError):
        plan_filename("sm86", "10.5.0")
    with pytest.raises(ValueError):
        plan_filename("8.6", "10.5")


def test_cc_model_filenames() -> None:
    assert cc_model_filenames(["7.5", "9.0"], "10.5.0.18") == {
        "7.5": "model.sm75.trt10.5.0.18.plan", "9.0": "model.sm90.trt10.5.0.18.plan"}


def test_versions_match_only_the_same_build() -> None:
    assert versions_match("10.5.0.18", "10.5.0.18")
    assert versions_match("10.5.0", "10.5.0.18")  # trtexec's banner has no build number
    assert not versions_match("10.5.0.17", "10.5.0.18")
    assert not versions_match("10.6.0", "10.5.0.18")
    assert not versions_match("10.5", "10.5.0.18")


def test_trt_version_comes_from_the_ngc_image_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRT_VERSION", "10.5.0.18+cuda12.6.2.004")  # NGC images add a suffix
    assert detect_trt_version("trtexec") == "10.5.0.18"
    assert versions_match(detect_trt_version("trtexec") or "", "10.5.0.18")


def test_trt_version_from_trtexecs_banner() -> None:
    assert parse_trtexec_banner("&&&& RUNNING TensorRT.trtexec [TensorRT v100500] [b18] # trtexec") \
        == "10.5.0.18"
    assert parse_trtexec_banner("[TensorRT v8601] # trtexec --help") == "8.6.1"
    assert parse_trtexec_banner("no banner") is None


def test_timing_cache_is_per_gpu_model_and_trt_build(tmp_path: Path) -> None:
    a10g = timing_cache_path(tmp_path, "NVIDIA A10G", "8.6", "10.5.0.18")
    assert a10g.parent == tmp_path and a10g.name == "timing_nvidia-a10g_sm8.6_trt10.5.0.18.cache"
    # the same compute capability on another GPU model gets its own cache
    assert timing_cache_path(tmp_path, "NVIDIA A40", "8.6", "10.5.0.18") != a10g
    assert timing_cache_path(tmp_path, "NVIDIA A10G", "8.6", "10.5.0.17") != a10g


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "t.cache"
    atomic_write_bytes(target, b"old")
    with pytest.raises(TypeError):  # the write fails half-way: the old file stays whole
        atomic_write_bytes(target, 123)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["t.cache"]  # no temporary left behind


def test_trtexec_command_follows_request(tmp_path: Path) -> None:
    req = BuildRequest(tmp_path / "m.onnx", engine_profile(WindowLimits(128), 2), fp16=False,
                       workspace_mb=512)
    cmd = trtexec_command("trtexec", req, tmp_path / "p.plan", None)
    assert "--minShapes=input:1x3x1x1" in cmd and "--optShapes=input:2x3x128x128" in cmd
    assert "--maxShapes=input:2x3x128x128" in cmd and "--memPoolSize=workspace:512M" in cmd
    assert "--fp16" not in cmd  # fp32 asked, fp32 built
    assert not [c for c in cmd if c.startswith("--timingCacheFile")]
    half = BuildRequest(req.onnx, req.profile, fp16=True)
    fp16 = trtexec_command("trtexec", half, tmp_path / "p", tmp_path)
    assert "--fp16" in fp16 and f"--timingCacheFile={tmp_path}" in fp16


# trtexec itself needs a GPU; this stand-in for NVIDIA's binary refuses a cache that reads "bad"
# (as TensorRT refuses one from another GPU) and otherwise writes the engine and the cache.
TRTEXEC = textwrap.dedent("""\
    #!{python}
    import sys
    from pathlib import Path
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
    cache = Path(args["timingCacheFile"]) if "timingCacheFile" in args else None
    if cache is not None and cache.exists() and cache.read_bytes() == b"bad":
        sys.exit("Error: timing cache mismatch")
    Path(args["saveEngine"]).write_bytes(b"engine")
    if cache is not None:
        cache.write_bytes(b"timings for this gpu")
""")


@pytest.fixture()
def trtexec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    exe = tmp_path / "bin" / "trtexec"
    exe.parent.mkdir()
    exe.write_text(TRTEXEC.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{exe.parent}:{Path(sys.executable).parent}")
    return exe


def test_mismatching_timing_cache_falls_back_to_empty(trtexec: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "timing.cache"
    shared.parent.mkdir()
    shared.write_bytes(b"bad")
    req = BuildRequest(tmp_path / "m.onnx", engine_profile(WindowLimits(64), 1), timing_cache=shared)
    work = tmp_path / "work"
    work.mkdir()
    build_with_trtexec(req, tmp_path / "out" / "m.plan", work)
    assert (tmp_path / "out" / "m.plan").read_bytes() == b"engine"
    assert shared.read_bytes() == b"timings for this gpu"  # replaced, through a rename
    assert sorted(p.name for p in shared.parent.iterdir()) == ["timing.cache"]


def test_first_build_creates_the_shared_cache(trtexec: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared" / "timing.cache"
    req = BuildRequest(tmp_path / "m.onnx", engine_profile(WindowLimits(64), 1), timing_cache=shared)
    work = tmp_path / "work"
    work.mkdir()
    build_with_trtexec(req, tmp_path / "m.plan", work)
    assert shared.read_bytes() == b"timings for this gpu"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed")
def test_cli_says_clearly_when_tensorrt_is_missing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    res = CliRunner().invoke(app, ["export", "trt", "--onnx", str(onnx), "--max-batch", "2",
                                   "-o", str(tmp_path)])
    assert res.exit_code == 2
    assert "no TensorRT here" in res.output


@pytest.mark.gpu(tensorrt=True)
def test_engine_builds_and_matches_pytorch(variant_weights, tmp_path: Path) -> None:
    import tensorrt as trt
    import torch

    from export.onnx_export import export_onnx, load_model
    from export.trt_build import build_with_api

    onnx = export_onnx("c4nla", variant_weights["c4nla"], tmp_path / "model.onnx").path
    cache = tmp_path / "timing.cache"
    plan = tmp_path / "model.plan"
    profile = engine_profile(WindowLimits(max_side=64), 2)
    build_with_api(BuildRequest(onnx, profile, timing_cache=cache), plan)
    assert cache.stat().st_size > 0
    # A second build reuses the timing cache; a damaged cache falls back to an empty one.
    build_with_api(BuildRequest(onnx, profile, timing_cache=cache), tmp_path / "again.plan")
    cache.write_bytes(b"not a timing cache")
    build_with_api(BuildRequest(onnx, profile, timing_cache=cache), tmp_path / "third.plan")

    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    from export.trt_run import bind_io

    def torch_dtype(trt_dtype):  # TensorRT -> numpy -> torch
        return torch.from_numpy(np.empty(0, dtype=trt.nptype(trt_dtype))).dtype

    for shape in ((2, 3, 45, 61), (1, 3, 5, 7)):  # odd sizes inside the profile, down to tiny
        x = torch.rand(*shape)
        outputs = bind_io(engine, context, {"input": x.cuda().contiguous()},
                          lambda s, d: torch.empty(s, dtype=d, device="cuda"), torch_dtype)
        assert set(outputs) == {"output", "output_u8"}  # every output bound (TensorRT 10)
        stream = torch.cuda.current_stream()
        assert context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        y_gpu = outputs["output"]
        model, _ = load_model("c4nla", variant_weights["c4nla"])
        with torch.no_grad():
            ref = model(x).numpy()
        np.testing.assert_allclose(y_gpu.cpu().numpy(), ref, atol=1e-3)


class _Mode:
    def __init__(self, name: str) -> None:
        self.name = name


class _Engine:
    """The served graph's I/O as TensorRT 10 lists it: one input, two outputs."""

    io = (("input", "INPUT", "FLOAT"), ("output", "OUTPUT", "FLOAT"), ("output_u8", "OUTPUT", "UINT8"))
    num_io_tensors = 3

    def get_tensor_name(self, i: int) -> str:
        return self.io[i][0]

    def get_tensor_mode(self, name: str) -> _Mode:
        return _Mode(dict((n, m) for n, m, _ in self.io)[name])

    def get_tensor_dtype(self, name: str) -> str:
        return dict((n, d) for n, _, d in self.io)[name]


class _Context:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> None:
        self.shapes[name] = shape

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, c, h, w = self.shapes["input"]
        return (n, c, 4 * h, 4 * w)

    def set_tensor_address(self, name: str, address: int) -> None:
        self.addresses[name] = address


class _Buffer:
    def __init__(self, shape: tuple[int, ...], dtype: str = "FLOAT") -> None:
        self.shape, self.dtype = shape, dtype

    def data_ptr(self) -> int:
        return id(self)


def test_every_io_tensor_of_the_engine_is_bound() -> None:
    """TensorRT 10's execute_async_v3 needs an address for every I/O tensor, `output_u8` too."""
    from export.trt_run import bind_io

    context = _Context()
    x = _Buffer((2, 3, 8, 9))
    outputs = bind_io(_Engine(), context, {"input": x}, _Buffer, lambda d: d)
    assert set(context.addresses) == {"input", "output", "output_u8"}
    assert context.addresses["input"] == x.data_ptr()
    assert outputs["output_u8"].dtype == "UINT8" and outputs["output"].shape == (2, 3, 32, 36)
    with pytest.raises(ValueError, match="engine inputs without a tensor: input"):
        bind_io(_Engine(), _Context(), {}, _Buffer, lambda d: d)
