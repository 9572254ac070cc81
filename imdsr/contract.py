"""The wire contract between the model repository, Triton and every client.

Every target (cpu, gpu, jetson) serves the same names and tensors, so clients never change.
FP32 NCHW RGB in [0, 1] in; out, FP32 (exact for 16-bit sources) or UINT8 (8-bit sources), as
the client asks (see docs/PERFORMANCE.md for the measurements behind the choice).
"""

from __future__ import annotations

MODEL_PREFIX = "imdeception_"
INPUT_NAME = "input"    # FP32 [N, 3, H, W], RGB in [0, 1]
OUTPUT_NAME = "output"  # FP32 [N, 3, s*H, s*W], RGB, not clamped
# The same result clamped to [0, 1] and rounded to 8 bits in the graph: what an 8-bit source needs,
# at a quarter of the bytes and with nothing left to convert (docs/PERFORMANCE.md, "The hop").
OUTPUT_U8_NAME = "output_u8"  # UINT8 [N, 3, s*H, s*W]
WIRE_DTYPE = "FP32"
SCALE = 4
DEFAULT_VARIANT = "c16nla"
# config.pbtxt parameter: the largest window side (LR px) the model accepts on this target. The
# gateway reads it from Triton and sizes its tiles by it (imdsr/imaging/windows.py).
MAX_WINDOW_PARAM = "imdsr_max_window"
# config.pbtxt parameter: SHA-256 of the weights the model was exported from (ETags name results
# by it, so new weights never answer with a cached result of the old ones).
WEIGHTS_PARAM = "imdsr_weights_sha256"

# config.pbtxt parameters that describe the model to the gateway (GET /models, tiling): its
# architecture, parameter count and FLOPs (NTIRE 2022 counting, 256x256 LR input), and its tiling
# rule (imdsr/imaging/tiling.py TilingRule).
ARCH_PARAM = "imdsr_arch"
PARAMS_PARAM = "imdsr_params"
FLOPS_PARAM = "imdsr_flops"
CONTEXT_PARAM = "imdsr_context"
ALIGN_PARAM = "imdsr_align"
MIN_WINDOW_PARAM = "imdsr_min_window"
WHOLE_PARAM = "imdsr_whole_up_to"
# config.pbtxt parameter (cpu target): admission's starting estimate, model seconds per output
# megapixel, until the gateway has learnt the model's own (service/admission.py). Measured or
# derived on the CPU the project ships for; absent elsewhere (the gateway's settings decide).
SECONDS_PER_MPX_PARAM = "imdsr_seconds_per_mpx"
# config.pbtxt parameter: window sides are padded up to a multiple of this (LR px, 0: none), the
# tiling rule's ``bucket`` (imdsr/imaging/tiling.py): a few window shapes, bounded runtime memory.
BUCKET_PARAM = "imdsr_bucket"
# config.pbtxt parameter: one line for a person choosing a model, the inputs it suits and what it
# trades (the registry entry's ``use_when``); GET /models and the web page show it.
USE_WHEN_PARAM = "imdsr_use_when"
# config.pbtxt parameter of the Python-backend models: the precision asked for ("auto", "f32",
# "bf16"; "fp16" with torch-cuda). "auto" is resolved by the model when it loads, on the serving
# CPU; the model then answers what it runs through DESCRIPTION_NAME.
PRECISION_PARAM = "precision"
# An output of the Python-backend models: a request that asks for it alone is answered at once,
# without running the network, with UTF-8 JSON ({"runtime": ..., "precision": ...}) as UINT8 [1, n].
DESCRIPTION_NAME = "imdsr_description"
# Triton queue priorities of the models that answer it (1 is Triton's highest): a describe
# request waits for the execution under way only, never behind the tiles queued at the default.
DESCRIBE_PRIORITY = 1
TILE_PRIORITY = 2

DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
DEFAULT_GATEWAY_PORT = 8080


def model_name(variant: str, arch: str = "imdeception") -> str:
    """Triton's name for a registry variant: ``imdeception_<variant>`` for the IMDeception family
    (the names clients have always used), the variant itself for other architectures, whose
    variant names start with their architecture (``rlfn``, ``imdn_nb7``)."""
    if arch == "imdeception":
        return f"{MODEL_PREFIX}{variant}"
    if variant != arch and not variant.startswith(f"{arch}_"):
        raise ValueError(f"variant {variant!r} of {arch!r} must be {arch!r} or start with '{arch}_'")
    return variant


def variant_of(model: str) -> str:
    """The registry variant a Triton model name serves (the inverse of ``model_name``)."""
    return model[len(MODEL_PREFIX):] if model.startswith(MODEL_PREFIX) else model
