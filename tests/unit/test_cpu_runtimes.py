"""The CPU runtimes behind the Python-backend model, and the published-architecture baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.published import published_architecture
from export.onnx_export import export_onnx
from imdsr.contract import OUTPUT_NAME, OUTPUT_U8_NAME
from training.models import create_model
from triton_host.python_backend.runtimes import RUNTIMES, make_runner


@pytest.fixture(scope="module")
def c4nla_onnx(variant_weights, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    return export_onnx("c4nla", variant_weights["c4nla"], tmp_path_factory.mktemp("rt") / "m.onnx").path


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runtimes_agree_within_one_level(runtime: str, c4nla_onnx) -> None:  # noqa: ANN001
    x = np.random.default_rng(0).random((2, 3, 37, 45), dtype=np.float32)
    reference = make_runner("onnxruntime", str(c4nla_onnx), 1)
    y_ref, u8_ref = reference.run(x, [OUTPUT_NAME, OUTPUT_U8_NAME])
    y, u8 = make_runner(runtime, str(c4nla_onnx), 1).run(x, [OUTPUT_NAME, OUTPUT_U8_NAME])
    assert y.shape == y_ref.shape == (2, 3, 148, 180) and u8.dtype == np.uint8
    assert np.abs(y - y_ref).max() * 255 < 0.05
    assert np.abs(u8.astype(int) - u8_ref).max() <= 1
    (only,) = make_runner(runtime, str(c4nla_onnx), 1).run(x, [OUTPUT_U8_NAME])  # one output asked
    assert np.abs(only.astype(int) - u8_ref).max() <= 1


def test_unknown_runtime_is_refused(c4nla_onnx) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="unknown CPU runtime"):
        make_runner("tvm", str(c4nla_onnx))


@pytest.mark.parametrize("variant", ["c16nla", "c4"])
def test_published_architecture_computes_what_ours_does(variant: str) -> None:
    torch.manual_seed(0)
    ours = create_model(variant).eval()
    published = published_architecture(ours)
    names = {type(m).__name__ for m in published.modules()}
    assert "SplitConvs" in names and not any(
        isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in published.modules())
    if variant == "c16nla":
        assert "PublishedAttention" in names
    for shape in ((1, 3, 37, 45), (1, 3, 64, 96)):  # 64x96: the published extra padding region
        x = torch.rand(*shape)
        with torch.no_grad():
            assert float((published(x) - ours(x)).abs().max()) < 1e-5


def test_precision_is_explicit_and_bf16_is_openvino_only(c4nla_onnx, tmp_path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    from pydantic import ValidationError

    from export.serving import CpuTarget
    from tests.support import ROOT

    x = np.random.default_rng(1).random((1, 3, 37, 45), dtype=np.float32)
    f32 = make_runner("openvino", str(c4nla_onnx), 1, precision="f32")
    assert f32.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    (a,) = f32.run(x, [OUTPUT_NAME])
    np.save(tmp_path / "x.npy", x)
    # bf16 in a process of its own: on an AMX CPU, a bf16-compiled OpenVINO model in the test
    # process crashed the interpreter at exit (after every test had passed).
    code = ("import sys, numpy as np; from triton_host.python_backend.runtimes import make_runner; "
            "r = make_runner('openvino', sys.argv[1], 1, precision='bf16'); "
            "np.save(sys.argv[3], r.run(np.load(sys.argv[2]), ['output'])[0])")
    subprocess.run([sys.executable, "-c", code, str(c4nla_onnx), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], cwd=ROOT, check=True, timeout=120)
    b = np.load(tmp_path / "y.npy")
    assert np.abs(a - b).max() < 0.05  # bf16 where the CPU runs it, else the same f32
    with pytest.raises(ValueError, match="f32 only"):
        make_runner("onnxruntime", str(c4nla_onnx), 1, precision="bf16")
    with pytest.raises(ValidationError, match="needs runtime"):
        CpuTarget(runtime="onnxruntime", precision="bf16")
