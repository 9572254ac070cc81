"""[cpu] precision = "auto": resolved where the model loads, published how the gateway can ask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from export.model_config import model_config
from export.serving import CpuTarget, load_serving
from imdsr.contract import DESCRIPTION_NAME
from service.model_traits import Description, ModelTraits
from triton_host.python_backend.runtimes import (
    auto_precision,
    cpu_flags,
    make_runner,
    openvino_capabilities,
    resolve_precision,
)

AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
OV_CAPS = frozenset({"FP32", "BF16", "INT8"})


def test_auto_is_bf16_with_openvino_on_amx_or_avx512_bf16_and_f32_elsewhere() -> None:
    assert auto_precision("openvino", AMX, OV_CAPS) == "bf16"
    assert auto_precision("openvino", AMX - {"amx_tile", "avx512_bf16"}, OV_CAPS) == "f32"  # half of each
    zen4 = frozenset({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})  # AMD EPYC: measured 2.5x
    assert auto_precision("openvino", zen4, OV_CAPS) == "bf16"
    assert auto_precision("openvino", frozenset({"avx2", "fma"}), OV_CAPS) == "f32"  # no fast bf16
    assert auto_precision("openvino", frozenset({"avx2", "avx512f"}), OV_CAPS) == "f32"
    assert auto_precision("openvino", AMX, frozenset({"FP32"})) == "f32"  # OpenVINO cannot
    assert auto_precision("onnxruntime", AMX, OV_CAPS) == "f32"  # ORT runs this graph in f32 only


def test_cpu_flags_come_from_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 amx_bf16 amx_tile\nbugs\t\t: spectre\n")
    assert cpu_flags(info) == {"fpu", "sse2", "amx_bf16", "amx_tile"}
    assert cpu_flags(tmp_path / "absent") == frozenset()  # not Linux: f32


def test_this_machine_resolves_auto_from_its_own_cpu() -> None:
    expected = auto_precision("openvino", cpu_flags(), openvino_capabilities())
    assert resolve_precision("openvino", "auto") == expected
    assert resolve_precision("onnxruntime", "auto") == "f32"
    assert resolve_precision("openvino", "f32") == "f32" and resolve_precision("openvino", "bf16") == "bf16"


def test_runners_say_what_they_run(variant_weights, tmp_path: Path) -> None:  # noqa: ANN001
    from export.onnx_export import export_onnx

    onnx = export_onnx("c4", variant_weights["c4"], tmp_path / "m.onnx").path
    assert make_runner("onnxruntime", str(onnx), 1, precision="auto").precision == "f32"
    assert make_runner("openvino", str(onnx), 1, precision="f32").precision == "f32"
    with pytest.raises(ValueError, match="unknown precision"):
        make_runner("openvino", str(onnx), 1, precision="int8")


def test_the_shipped_default_is_auto_and_bf16_still_needs_openvino() -> None:
    assert load_serving().cpu.precision == "auto"
    assert CpuTarget(runtime="onnxruntime", precision="auto").precision == "auto"
    with pytest.raises(ValidationError, match="needs runtime"):
        CpuTarget(runtime="onnxruntime", precision="bf16")


def test_python_backend_models_describe_themselves_and_plans_state_their_precision() -> None:
    cfg = load_serving()
    cpu = ModelTraits.from_config("imdeception_c4", _as_triton_json(model_config("c4", "cpu", cfg)))
    assert cpu.describes and cpu.precision == "auto" and cpu.fixed_precision is None
    plan = ModelTraits.from_config("imdeception_c4", _as_triton_json(model_config("c4", "gpu", cfg)))
    assert not plan.describes and plan.fixed_precision is None
    torch_gpu = cfg.model_copy(update={"gpu": cfg.gpu.model_copy(update={"runtime": "torch-cuda"})})
    traits = ModelTraits.from_config("imdeception_c4", _as_triton_json(model_config("c4", "gpu", torch_gpu)))
    assert traits.describes and traits.fixed_precision == "fp16"
    f32 = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={"precision": "f32"})})
    pinned = ModelTraits.from_config("m", _as_triton_json(model_config("c4", "cpu", f32)))
    assert pinned.fixed_precision == "f32"


def _as_triton_json(msg: dict) -> dict:
    """The rendered config as Triton's get_model_config(as_json=True) returns it: parameters as a
    map, outputs as a list."""
    params = {p["key"]: p["value"] for p in msg["parameters"]}
    return {**msg, "parameters": params, "output": [{"name": o["name"]} for o in msg["output"]]}


def test_a_description_round_trips_and_anything_else_is_refused() -> None:
    body = np.frombuffer(json.dumps({"precision": "bf16", "runtime": "openvino"}).encode(), np.uint8)
    assert Description.from_output(body[None]) == Description(runtime="openvino", precision="bf16")
    for bad in (None, body, body[None].astype(np.int32), np.zeros((1, 0), np.uint8),
                np.frombuffer(b"\xff{", np.uint8)[None],
                np.frombuffer(b'{"runtime": "openvino"}', np.uint8)[None]):
        with pytest.raises(ValueError, match="not a model description"):
            Description.from_output(bad)
    # model.py is copied into the repository alone: its copy of the name must be the contract's
    from triton_host.python_backend import MODEL_PY

    assert f'DESCRIPTION_NAME = "{DESCRIPTION_NAME}"' in MODEL_PY.read_text()
