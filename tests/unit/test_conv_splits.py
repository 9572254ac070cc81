"""export/conv_splits.py: split convolutions become one convolution per part, computing the same."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.conv_splits import split_conv_outputs
from export.onnx_export import SPLIT_TOLERANCE, export_onnx, run_onnx, split_convolutions


def _graph(*, act: str | None = "LeakyRelu", group: int = 1, axis: int = 1, sizes=(2, 6),  # noqa: ANN001
           split_as: str = "input", extra_reader: bool = False, bias: bool = True) -> onnx.ModelProto:
    """input (1, 4, H, W) -> Conv(8 out) [-> act] -> Split -> two outputs (each through Relu,
    so that the split's outputs are read by nodes, as in the real graphs)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4 // group, 3, 3)).astype(np.float32), "w")]
    conv_in = ["input", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b"))
        conv_in.append("b")
    nodes = [helper.make_node("Conv", conv_in, ["c"], name="conv", pads=[1, 1, 1, 1], group=group)]
    split_in = "c"
    if act:
        nodes.append(helper.make_node(act, ["c"], ["a"], name="act", **(
            {"alpha": 0.05} if act == "LeakyRelu" else {})))
        split_in = "a"
    if split_as == "input":
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        nodes.append(helper.make_node("Split", [split_in, "sizes"], ["p0", "p1"], name="split", axis=axis))
    elif split_as == "dynamic":  # sizes computed by the graph: not constant, left alone
        nodes += [helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(
                      np.array(sizes, np.int64))),
                  helper.make_node("Identity", ["s"], ["sizes"]),
                  helper.make_node("Split", [split_in, "sizes"], ["p0", "p1"], name="split", axis=axis)]
    else:  # equal parts, no sizes
        nodes.append(helper.make_node("Split", [split_in], ["p0", "p1"], name="split", axis=axis))
    nodes += [helper.make_node("Relu", ["p0"], ["o0"]), helper.make_node("Relu", ["p1"], ["o1"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, None, None])
               for n in ("o0", "o1")]
    if extra_reader:  # the conv's output is also a graph output: the conv must stay
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 8, None, None]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, [1, 4, None, None])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(proto: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})


X = np.random.default_rng(0).random((1, 4, 9, 11), dtype=np.float32)


@pytest.mark.parametrize("act", ["LeakyRelu", "Relu", None])
@pytest.mark.parametrize("split_as", ["input", "equal"])
@pytest.mark.parametrize("bias", [True, False])
def test_split_conv_becomes_one_conv_per_part(act: str | None, split_as: str, bias: bool) -> None:
    proto = _graph(act=act, split_as=split_as, sizes=(2, 6) if split_as == "input" else (4, 4), bias=bias)
    rewritten, count = split_conv_outputs(proto)
    onnx.checker.check_model(rewritten, full_check=True)
    ops = [n.op_type for n in rewritten.graph.node]
    assert count == 1 and "Split" not in ops and ops.count("Conv") == 2
    copies = [n for n in rewritten.graph.node if act and n.name.endswith(f"_{act}")]
    assert len(copies) == (2 if act else 0)  # the activation, once per part
    shapes = [numpy_helper.to_array(t).shape for t in rewritten.graph.initializer
              if t.name.endswith("_w")]
    expected = [(2, 4, 3, 3), (6, 4, 3, 3)] if split_as == "input" else [(4, 4, 3, 3)] * 2
    assert shapes == expected
    assert not {"w", "b", "sizes"} & {t.name for t in rewritten.graph.initializer}  # unused: gone
    for got, want in zip(_run(rewritten, X), _run(proto, X), strict=True):
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("case", [{"group": 2}, {"axis": 2, "sizes": (4, 5)}, {"extra_reader": True},
                                  {"split_as": "dynamic"}, {"act": "Softmax"}])
def test_what_is_not_provably_the_same_is_left_alone(case: dict) -> None:
    # grouped convs (parts would straddle groups), another axis, a conv output read elsewhere,
    # sizes not constant, an op that mixes channels (Softmax over axis 1 by default... any op
    # not known to act on each value alone)
    proto = _graph(**case)
    rewritten, count = split_conv_outputs(proto)
    assert count == 0
    assert [n.op_type for n in rewritten.graph.node] == [n.op_type for n in proto.graph.node]


def test_exported_graphs_have_no_split_and_compute_what_pytorch_does(variant_weights, tmp_path) -> None:  # noqa: ANN001
    import torch

    from training.weights.store import load_model

    path = export_onnx("c4nla", variant_weights["c4nla"], tmp_path / "m.onnx").path
    proto = onnx.load(str(path))
    assert "Split" not in {n.op_type for n in proto.graph.node}  # IMDeception's distillation splits
    model, _ = load_model("c4nla", variant_weights["c4nla"])
    x = np.random.default_rng(3).random((1, 3, 37, 45), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_onnx(proto, x) - want).max() < 1e-4


def test_a_rewrite_that_changes_the_output_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    import export.conv_splits as conv_splits

    proto = _graph()
    real = conv_splits.split_conv_outputs

    def wrong(p: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
        out, n = real(p)
        for t in out.graph.initializer:  # a bias off by more than the tolerance
            if t.name.endswith("_b"):
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) + 10 * SPLIT_TOLERANCE, t.name))
        return out, n

    monkeypatch.setattr(conv_splits, "split_conv_outputs", wrong)
    # split_convolutions checks at the export's verify shape (3 input channels): a 3-channel graph
    three = _three_channel(proto)
    result, count = split_convolutions(three)
    assert result is three and count == 0
    monkeypatch.setattr(conv_splits, "split_conv_outputs", real)
    kept, count = split_convolutions(three)
    assert count == 1 and "Split" not in {n.op_type for n in kept.graph.node}


def _three_channel(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` taking 3 input channels and giving run_onnx its "output"."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    for t in model.graph.initializer:
        if t.name == "w":
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t)[:, :3].copy(), "w"))
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                [None, 3, None, None]))
    model.graph.node.append(helper.make_node("Concat", ["o0", "o1"], ["output"], axis=1))
    model.graph.output.append(helper.make_tensor_value_info("output", TensorProto.FLOAT,
                                                            [None, 8, None, None]))
    return model
