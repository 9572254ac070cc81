"""ONNX export: dynamic shapes that really are dynamic, checked graphs, provenance metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.onnx_export import export_onnx, load_model, max_abs_diff, read_provenance
from imdsr.contract import INPUT_NAME, OUTPUT_NAME, OUTPUT_U8_NAME
from imdsr.digest import file_sha256

# Neither multiples of 4 (pixel shuffle) nor of 32 (attention regions), plus aligned and tiny ones.
SHAPES = [(1, 3, 37, 45), (2, 3, 33, 70), (1, 3, 5, 7), (3, 3, 64, 96), (1, 3, 1, 131)]


@pytest.fixture(scope="module", params=["c16nla", "c4"])  # with and without attention
def exported(request: pytest.FixtureRequest, variant_weights: dict[str, Path],
             tmp_path_factory: pytest.TempPathFactory):
    variant = request.param
    out = tmp_path_factory.mktemp("onnx") / f"{variant}.onnx"
    result = export_onnx(variant, variant_weights[variant], out)
    model, _ = load_model(variant, variant_weights[variant])
    return variant, result, model


def test_onnxruntime_matches_pytorch_at_odd_shapes(exported) -> None:
    _, result, model = exported
    assert max_abs_diff(model, result.path, tuple(SHAPES)) < 1e-4


def test_batch_height_width_are_symbolic(exported) -> None:
    _, result, _ = exported
    graph = onnx.load(str(result.path)).graph
    for value, name in ((graph.input[0], INPUT_NAME), (graph.output[0], OUTPUT_NAME)):
        assert value.name == name
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        dims = value.type.tensor_type.shape.dim
        assert [bool(d.dim_param) for d in dims] == [True, False, True, True]
        assert dims[1].dim_value == 3


def test_graph_is_checked_simplified_and_carries_provenance(exported, variant_weights) -> None:
    variant, result, _ = exported
    onnx.checker.check_model(onnx.load(str(result.path)), full_check=True)
    assert result.nodes_simplified <= result.nodes_traced
    # each distillation split became one convolution per part (export/conv_splits.py)
    proto = onnx.load(str(result.path))
    assert result.splits_rewritten > 0 and "Split" not in {n.op_type for n in proto.graph.node}
    meta = read_provenance(result.path)
    assert meta["variant"] == variant
    assert meta["scale"] == "4"
    assert meta["weights_sha256"] == file_sha256(variant_weights[variant])
    assert meta["format"] == "imdsr-onnx/1"


def test_attention_graph_loses_the_tracers_shape_noise(exported) -> None:
    variant, result, _ = exported
    if variant == "c16nla":  # the pad-to-32 arithmetic is where onnxslim pays off
        assert result.nodes_simplified < 0.8 * result.nodes_traced


def test_export_is_deterministic(variant_weights, tmp_path: Path) -> None:
    # The committed repository's staleness test relies on regeneration changing no byte.
    a = export_onnx("c4", variant_weights["c4"], tmp_path / "a.onnx").path.read_bytes()
    b = export_onnx("c4", variant_weights["c4"], tmp_path / "b.onnx").path.read_bytes()
    assert a == b


def _ancestors(graph: onnx.GraphProto, name: str) -> set[str]:
    """Op types of every node the tensor ``name`` depends on."""
    producer = {out: node for node in graph.node for out in node.output}
    seen: set[str] = set()
    todo, ops = [name], set()
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        ops.add(node.op_type)
        todo += list(node.input)
    return ops


def test_fp32_output_is_not_clamped_and_u8_output_is_its_rounding(exported) -> None:
    # The contract says FP32 out, not clamped: no Clip on the way to `output`; `output_u8` is the
    # same values clamped and rounded half-to-even, as the tiler quantises.
    import onnxruntime as ort

    _, result, model = exported
    graph = onnx.load(str(result.path)).graph
    assert "Clip" not in _ancestors(graph, OUTPUT_NAME)
    assert "Cast" in _ancestors(graph, OUTPUT_U8_NAME)
    x = np.random.default_rng(3).random((1, 3, 9, 14), dtype=np.float32) * 1.4 - 0.2
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    y, u8 = ort.InferenceSession(str(result.path)).run([OUTPUT_NAME, OUTPUT_U8_NAME], {"input": x})
    np.testing.assert_allclose(y, ref, atol=1e-4)
    assert y.min() < 0 or y.max() > 1  # the test reaches both clamps' range
    assert u8.dtype == np.uint8
    expect = np.rint(np.clip(y, 0, 1) * 255)
    assert np.abs(u8.astype(int) - expect).max() <= 1  # float noise at exact .5 only


def test_cli_exports_and_verifies(variant_weights, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    out = tmp_path / "c4.onnx"
    res = CliRunner().invoke(app, ["export", "onnx", "--variant", "c4", "--weights",
                                   str(variant_weights["c4"]), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and "max |diff|" in res.output


def test_cli_rejects_weights_of_another_variant(variant_weights, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    res = CliRunner().invoke(app, ["export", "onnx", "--variant", "c8", "--weights",
                                   str(variant_weights["c4"]), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 2
    assert "holds variant 'c4'" in res.output
