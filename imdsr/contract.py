"""The wire contract between the model repository, Triton and every client.

Every target (cpu, gpu, jetson) serves the same names and tensors, so clients never change.
FP32 NCHW RGB in [0, 1] on the wire: exact for 8-bit and 16-bit sources alike (see
docs/PERFORMANCE.md for the FP16/UINT8 measurements behind the choice).
"""

from __future__ import annotations

MODEL_PREFIX = "imdeception_"
INPUT_NAME = "input"    # FP32 [N, 3, H, W], RGB in [0, 1]
OUTPUT_NAME = "output"  # FP32 [N, 3, s*H, s*W], RGB, not clamped
WIRE_DTYPE = "FP32"
SCALE = 4
DEFAULT_VARIANT = "c16nla"
# config.pbtxt parameter: the largest window side (LR px) the model accepts on this target. The
# gateway reads it from Triton and sizes its tiles by it (imdsr/imaging/windows.py).
MAX_WINDOW_PARAM = "imdsr_max_window"

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
DEFAULT_GATEWAY_PORT = 8080


def model_name(variant: str) -> str:
    return f"{MODEL_PREFIX}{variant}"


def variant_of(model: str) -> str:
    if not model.startswith(MODEL_PREFIX):
        raise ValueError(f"{model!r} is not an imdsr model name ({MODEL_PREFIX}<variant>)")
    return model[len(MODEL_PREFIX):]
