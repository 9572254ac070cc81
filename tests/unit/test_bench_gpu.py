"""``imdsr bench gpu`` (bench/gpu_check.py) and the gpu target's ``torch-cuda`` repository.

On a machine without CUDA (CI, a developer's) the check must still run to the end through the real
CLI: the report's sections in order, each GPU step skipped with its reason, the plan step's dry run
for a named GPU, and the generated Python-backend repository; exit code 0. The repository's config
is parsed with Triton's own schema; its model module must import where torch cannot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from tests.support import ROOT


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda(), reason="checks the no-GPU report; a GPU machine runs the real one")
def test_report_without_a_gpu_skips_each_gpu_step_and_dry_runs_the_named_gpu(tmp_path: Path,
                                                                              monkeypatch) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    monkeypatch.setenv("IMDSR_GPU_NAME", "NVIDIA H200")
    monkeypatch.setenv("IMDSR_GPU_CC", "9.0")
    out = tmp_path / "report"
    # c4: the same report as c16nla's (what the GPU machine runs), exported faster
    res = CliRunner().invoke(app, ["bench", "gpu", "--out", str(out), "--variant", "c4"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    assert text in res.output  # the same report on stdout (progress lines go to stderr)
    sections = {s["key"]: s for s in report["sections"]}
    assert list(sections) == ["a", "b", "c", "d"]
    assert report["exit_code"] == 0

    # a: nothing detected, said so
    assert sections["a"]["status"] == "skipped" and "no GPU detected" in sections["a"]["why"]
    # b: the real `imdsr export plans --dry-run` for the named GPU
    plans = sections["b"]
    assert plans["status"] == "ran", plans["why"]
    assert plans["data"]["gpu"] == "NVIDIA H200" and plans["data"]["compute_capability"] == "9.0"
    assert plans["data"]["dry_run"] is True and plans["data"]["plan"].startswith("model.sm90.trt")
    assert plans["data"]["key"].startswith("nvidia-h200_sm9.0_") and plans["data"]["key"].endswith("_dryrun")
    assert plans["data"]["repository_names_plan"] and plans["data"]["cc_listed_in_serving_toml"]
    # c and d: skipped for want of CUDA; d still generated the torch-cuda repository
    assert sections["c"]["status"] == "skipped" and sections["c"]["why"].startswith("no GPU")
    serve = sections["d"]
    assert serve["status"] == "skipped" and serve["why"].startswith("no GPU")
    repo = serve["data"]["repository"]
    assert serve["data"]["repository_ok"]
    assert (repo["backend"], repo["kind"], repo["runtime"], repo["dynamic_batching"]) == (
        "python", "KIND_GPU", "torch-cuda", True)
    assert {"model.py", "runtimes.py", "model.torchscript.pt", "model.onnx"} <= set(repo["files"])

    # the Markdown: one heading per section with its status, the reasons, the summary table last
    for heading in ("## a. ", "## b. ", "## c. ", "## d. ", "## e. summary"):
        assert heading in text
    assert text.index("## e. summary") > text.index("## d. ")
    assert "**skipped**: no GPU" in text and "| b. plan step" in text.split("## e. summary")[1]


def test_unknown_sections_and_devices_are_refused() -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    assert CliRunner().invoke(app, ["bench", "gpu", "--sections", "a,x"]).exit_code != 0
    assert CliRunner().invoke(app, ["bench", "gpu", "--serve-device", "tpu"]).exit_code != 0


def _torch_cuda_toml(tmp_path: Path) -> Path:
    text = (ROOT / "export" / "serving.toml").read_text()
    assert '\nruntime = "tensorrt"\n' in text  # the [gpu] default stays TensorRT
    path = tmp_path / "serving.toml"
    path.write_text(text.replace('\nruntime = "tensorrt"\n', '\nruntime = "torch-cuda"\n'))
    return path


@pytest.fixture(scope="module")
def torch_cuda_repo(tmp_path_factory: pytest.TempPathFactory, variant_weights) -> Path:  # noqa: ANN001
    from typer.testing import CliRunner

    from imdsr.cli import app

    tmp = tmp_path_factory.mktemp("torch-cuda")
    out = tmp / "repo"
    res = CliRunner().invoke(app, ["export", "repo", "--target", "gpu", "--variants", "c4",
                                   "--weights", f"c4={variant_weights['c4']}",
                                   "--config", str(_torch_cuda_toml(tmp)), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out / "imdeception_c4"


def test_torch_cuda_repository_is_a_gpu_python_backend_model(torch_cuda_repo: Path) -> None:
    config = text_format.Parse((torch_cuda_repo / "config.pbtxt").read_text(), mc.ModelConfig())
    assert config.backend == "python" and not config.platform
    assert [g.kind for g in config.instance_group] == [mc.ModelInstanceGroup.KIND_GPU]
    assert config.HasField("dynamic_batching") and config.max_batch_size == 8
    assert not config.cc_model_filenames  # no TensorRT plans
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["runtime"] == "torch-cuda" and params["precision"] == "fp16"
    assert params["device"] == "cuda"
    files = {p.name for p in (torch_cuda_repo / "1").iterdir()}
    assert {params["model_file"], "model.py", "runtimes.py", "model.onnx"} <= files


def test_torch_cuda_runner_matches_onnx_runtime_on_the_cpu(torch_cuda_repo: Path) -> None:
    import numpy as np

    from triton_host.python_backend.runtimes import make_runner

    version = torch_cuda_repo / "1"
    torch_runner = make_runner("torch-cuda", str(version / "model.torchscript.pt"), device="cpu")
    ort = make_runner("onnxruntime", str(version / "model.onnx"), 1)
    x = np.random.default_rng(0).random((2, 3, 37, 45), dtype=np.float32)
    x.setflags(write=False)  # as Triton hands inputs over
    got = torch_runner.run(x, ["output", "output_u8"])
    ref = ort.run(x, ["output", "output_u8"])
    assert got[0].shape == ref[0].shape == (2, 3, 148, 180) and got[1].dtype == np.uint8
    assert float(np.abs(got[0] - ref[0]).max()) < 1e-4
    assert int(np.abs(got[1].astype(np.int16) - ref[1]).max()) <= 1
    with pytest.raises(ValueError, match="f32 only"):
        make_runner("torch-cuda", str(version / "model.torchscript.pt"), device="cpu", precision="fp16")


_IMPORT_WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None  # `import torch` raises, as where torch is not installed
sys.path[:0] = [{backend!r}, {version!r}]
import model  # the generated model.py, beside runtimes.py
from runtimes import make_runner
assert sys.modules.get("torch") is None
make_runner("onnxruntime", {onnx!r}, 1)  # a CPU runtime still works
try:
    make_runner("torch-cuda", {script!r}, device="cpu")
except ImportError:
    print("torch only when a torch-cuda runner is made")
"""


def test_generated_model_module_imports_without_torch(torch_cuda_repo: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        pytest.skip("nvidia-pytriton (Triton's triton_python_backend_utils) is not installed")
    backend = Path(spec.origin).parent / "tritonserver" / "backends" / "python"
    version = torch_cuda_repo / "1"
    code = _IMPORT_WITHOUT_TORCH.format(backend=str(backend), version=str(version),
                                        onnx=str(version / "model.onnx"),
                                        script=str(version / "model.torchscript.pt"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=version)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch only when a torch-cuda runner is made" in done.stdout


def test_plan_step_refuses_the_torch_cuda_runtime(tmp_path: Path) -> None:
    from export.plans import PlanError, PlanJob, run_plans
    from export.serving import load_serving

    cfg = load_serving(_torch_cuda_toml(tmp_path))
    job = PlanJob("gpu", ["c4"], tmp_path / "onnx", tmp_path / "cache", tmp_path / "repo", cfg,
                  dry_run=True)
    with pytest.raises(PlanError, match="serves no TensorRT plans"):
        run_plans(job, "NVIDIA H200", "9.0")


def test_the_carried_wheels_are_pinned_and_cover_the_gateway() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import gpu_pack
    finally:
        sys.path.pop(0)
    wheels = gpu_pack.read_wheels()
    names = {gpu_pack._norm(n) for n, _, _ in wheels}
    assert all(v and v[0].isdigit() for _, v, _ in wheels)
    # what Triton, its stub and the gateway import that the GPU machine lacks
    assert {"nvidia_pytriton", "numpy", "fastapi", "starlette", "uvicorn", "click", "pydantic",
            "pydantic_core", "pydantic_settings", "python_multipart", "tritonclient",
            "imagecodecs"} <= names
    assert dict((gpu_pack._norm(n), how) for n, _, how in wheels)["numpy"] == "slim:stub"


def test_fidelity_section_rehearsed_on_the_cpu(tmp_path: Path) -> None:
    """The fidelity code end to end on the CPU (fp16 there too), at a small profile: its rows,
    verdict and report lines. On a GPU the same code runs on CUDA at the real profile."""
    import numpy as np
    from PIL import Image

    from bench.gpu_check import Options, section_fidelity

    text = (ROOT / "export" / "serving.toml").read_text()
    small = tmp_path / "small.toml"
    small.write_text(text.replace("\nwindow = 320 ", "\nwindow = 32 ")
                     .replace("\nmax_batch = 8", "\nmax_batch = 2")
                     .replace("warmup_batch_sizes = [1, 8]", "warmup_batch_sizes = [1, 2]"))
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:100, 0:140]
    for i in range(2):  # smooth pictures with some texture, not multiples of 4
        base = (np.sin(xx / (5.0 + i)) * np.cos(yy / 7.0) * 90 + 128)[..., None]
        img = np.clip(base + rng.normal(0, 8, (100, 140, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img[: 97 + i, : 133 + i]).save(folder / f"{i}.png")
    section = section_fidelity(Options(out=tmp_path, bsd100=folder, config=small), device="cpu")
    assert section.status == "ran", section.why
    rows = section.data["profile"]
    assert [(r["profile"], r["shape"]) for r in rows] == [
        ("min", [1, 3, 1, 1]), ("opt", [2, 3, 32, 32]), ("max", [2, 3, 32, 32])]
    assert rows[0]["y_psnr_hr_fp32"] is None  # a 1-px window has no pixels left after the shave
    assert all(r["nonfinite_fp16"] == 0 and r["max_level_diff"] <= 3 for r in rows)
    whole = section.data["whole"]
    assert section.data["images"] == 2 and abs(whole["delta_db"]) < 0.03
    assert section.verdicts == {"fp16 within 0.03 dB of FP32": True}
    assert any("rule (fp16 within 0.03 dB" in line and "PASS" in line for line in section.lines)


@pytest.mark.gpu
def test_fidelity_on_the_gpu(tmp_path: Path) -> None:
    from bench.gpu_check import Options, section_fidelity

    section = section_fidelity(Options(out=tmp_path, max_images=5))
    assert section.status == "ran", section.why
    rows = section.data["profile"]
    assert [r["profile"] for r in rows] == ["min", "opt", "max"]
    assert all(r["nonfinite_fp16"] == 0 and r["nonfinite_fp32"] == 0 for r in rows)
    assert "fp16 within 0.03 dB of FP32" in section.verdicts
