"""Running a built TensorRT engine from PyTorch: every I/O tensor bound, as TensorRT 10 requires.

TensorRT 10's ``execute_async_v3`` fails unless every input and output of the engine has an
address (TensorRT 8.x -> 10.x migration guide; NVIDIA/TensorRT#4344). The served graphs have two
outputs (``output`` and ``output_u8``), so binding names one by one misses one: iterate instead.
TensorRT and torch are imported by the caller; this module imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def bind_io(engine: Any, context: Any, inputs: dict[str, Any], empty: Callable[..., Any],
            dtype_of: Callable[[Any], Any]) -> dict[str, Any]:
    """Set the input shapes, allocate every output and give every I/O tensor its address.

    ``inputs`` maps input names to contiguous device tensors; ``empty(shape, dtype)`` allocates a
    device tensor; ``dtype_of(trt_dtype)`` maps a TensorRT data type to the allocator's. Returns
    the output tensors by name (valid once the stream that runs the context has finished).
    """
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    is_input = {n: engine.get_tensor_mode(n).name == "INPUT" for n in names}
    if missing := sorted(n for n in names if is_input[n] and n not in inputs):
        raise ValueError(f"engine inputs without a tensor: {', '.join(missing)}")
    if extra := sorted(set(inputs) - set(names)):
        raise ValueError(f"not inputs of this engine: {', '.join(extra)}")
    for name, tensor in inputs.items():
        context.set_input_shape(name, tuple(tensor.shape))
    outputs = {n: empty(tuple(context.get_tensor_shape(n)), dtype_of(engine.get_tensor_dtype(n)))
               for n in names if not is_input[n]}
    for name in names:
        context.set_tensor_address(name, (inputs if is_input[name] else outputs)[name].data_ptr())
    return outputs
