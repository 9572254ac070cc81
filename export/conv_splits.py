"""ONNX pass: a convolution whose output channels are split apart becomes one convolution per part.

The distillation blocks of IMDeception, IMDN and their peers compute 64 channels and split them
16 / 48 (``Conv -> [LeakyRelu] -> Split(axis=1)``): the 16 go to the block's concatenation, the
48 to the next convolution. Channels of a convolution are computed independently, so two
convolutions of 16 and 48 output channels (the weights and bias sliced) compute exactly the
same numbers without the split, which OpenVINO's CPU plugin runs as a reference kernel that
copies the tensor: 19 ms of 128 for c16nla at 256 px in bf16 on the Intel AMX VM of
docs/PERFORMANCE.md ("Served graph").

Only what is provably the same is rewritten: a Split on axis 1 whose input is a Conv with
``group = 1`` and constant weights (and bias), optionally through one element-wise activation
that acts on each channel alone, where the Conv and the activation feed nothing but the Split.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

# Element-wise on each value: commute with slicing channels.
CHANNELWISE = frozenset({"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "HardSigmoid",
                         "HardSwish", "Gelu", "Clip", "Softplus", "Softsign", "Identity"})


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _split_sizes(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto],
                 channels: int) -> list[int] | None:
    """The channel counts a Split makes (opset 13+: a constant input; older: an attribute;
    none given: equal parts), or None where they are not constant."""
    attrs = _attrs(node)
    if len(node.input) > 1 and node.input[1]:
        if node.input[1] not in inits:
            return None
        return [int(v) for v in numpy_helper.to_array(inits[node.input[1]])]
    if "split" in attrs:
        return [int(v) for v in attrs["split"]]
    parts = int(attrs.get("num_outputs", len(node.output)))
    if channels % parts:
        return None
    return [channels // parts] * parts


def _copy(node: onnx.NodeProto, name: str, inputs: list[str], outputs: list[str]) -> onnx.NodeProto:
    """``node`` (its op and attributes) under another name, between other tensors."""
    return onnx.helper.make_node(node.op_type, inputs, outputs, name=name, domain=node.domain,
                                 **_attrs(node))


def split_conv_outputs(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``proto`` with every such Split replaced by per-part convolutions; and how many were."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    for out in graph.output:
        readers[out.name] = readers.get(out.name, 0) + 1

    drop: set[int] = set()
    inserted: dict[int, list[onnx.NodeProto]] = {}  # index of the Split -> nodes in its place
    new_inits: list[onnx.TensorProto] = []
    position = {id(node): i for i, node in enumerate(graph.node)}
    for split in graph.node:
        if split.op_type != "Split" or int(_attrs(split).get("axis", 0)) != 1:
            continue
        act = producer.get(split.input[0])
        conv = act
        if act is not None and act.op_type in CHANNELWISE and len(act.input) == 1:
            conv = producer.get(act.input[0])
        else:
            act = None
        if conv is None or conv.op_type != "Conv" or int(_attrs(conv).get("group", 1)) != 1:
            continue
        if any(name not in inits for name in conv.input[1:] if name):
            continue
        if readers.get(conv.output[0]) != 1 or (act is not None and readers.get(act.output[0]) != 1):
            continue
        weight = numpy_helper.to_array(inits[conv.input[1]])
        bias = numpy_helper.to_array(inits[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] \
            else None
        sizes = _split_sizes(split, inits, weight.shape[0])
        if sizes is None or sum(sizes) != weight.shape[0] or len(sizes) != len(split.output):
            continue
        nodes = []
        start = 0
        for k, (size, out) in enumerate(zip(sizes, split.output, strict=True)):
            stem = f"{conv.name or conv.output[0]}_part{k}"
            w = numpy_helper.from_array(np.ascontiguousarray(weight[start:start + size]), f"{stem}_w")
            inputs = [conv.input[0], w.name]
            new_inits.append(w)
            if bias is not None:
                b = numpy_helper.from_array(np.ascontiguousarray(bias[start:start + size]), f"{stem}_b")
                inputs.append(b.name)
                new_inits.append(b)
            conv_out = out if act is None else f"{stem}_out"
            nodes.append(_copy(conv, stem, inputs, [conv_out]))
            if act is not None:
                nodes.append(_copy(act, f"{stem}_{act.op_type}", [conv_out], [out]))
            start += size
        drop |= {position[id(conv)], position[id(split)]} | (
            {position[id(act)]} if act is not None else set())
        inserted[position[id(split)]] = nodes
    if not inserted:
        return model, 0
    # The parts go where the Split was: by then the Conv's input has been computed.
    nodes = []
    for i, node in enumerate(graph.node):
        nodes += inserted.get(i, [])
        if i not in drop:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(new_inits)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, len(inserted)
