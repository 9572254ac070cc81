"""The serving knobs (`export/serving.toml`) as validated pydantic models.

One file drives every generated ``config.pbtxt``; a typo in a key is an error, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from imdsr.config import StrictModel, load_toml
from imdsr.imaging.tiling import ALIGN
from imdsr.imaging.windows import WindowLimits

DEFAULT_SERVING_TOML = Path(__file__).resolve().parent / "serving.toml"

Target = Literal["cpu", "gpu", "jetson"]
TARGETS: tuple[Target, ...] = ("cpu", "gpu", "jetson")


class Batching(StrictModel):
    max_queue_delay_us: int = Field(2000, ge=0)
    preferred_batch_sizes: list[int] = Field(default_factory=list)
    preserve_ordering: bool = False
    max_queue_size: int = Field(64, ge=0)
    queue_timeout_us: int = Field(60_000_000, ge=0)
    timeout_action: Literal["REJECT", "DELAY"] = "REJECT"
    allow_timeout_override: bool = True


class TargetBase(StrictModel):
    instances: dict[str, int] = Field(default_factory=lambda: {"default": 1})
    warmup_batch_sizes: list[int] = Field(default_factory=lambda: [1])
    max_batch: int | None = Field(None, ge=1, description="overrides the top-level max_batch")
    preferred_batch_sizes: list[int] | None = Field(
        None, description="overrides [batching] preferred_batch_sizes; [1]: never group requests")

    def instance_count(self, variant: str) -> int:
        return self.instances.get(variant, self.instances.get("default", 1))


class CpuTarget(TargetBase):
    runtime: Literal["onnxruntime", "openvino"] = "onnxruntime"
    intra_op_threads: int = Field(2, ge=0)  # 0 lets the runtime use every core
    allow_spinning: bool = False
    # Whether the Python backend runs the requests Triton hands over together as one batch.
    merge_requests: bool = False
    # OpenVINO: how many of the requests Triton hands over at once run side by side, each on
    # intra_op_threads / side_by_side threads (streams); a lone request still gets every thread.
    side_by_side: int = Field(1, ge=1)
    # OpenVINO: how many window shapes per instance get a compilation of their own (the ones
    # seen most; faster than the dynamic-shape graph, each with its own buffers); 0: none.
    static_shapes: int = Field(0, ge=0)
    # auto: resolved by the served model when it loads, on the serving CPU (runtimes.py
    # resolve_precision): bf16 with OpenVINO where the CPU has AMX, f32 elsewhere. f32: within an
    # 8-bit level of PyTorch everywhere. bf16: OpenVINO only, forced (slow without AMX).
    precision: Literal["auto", "f32", "bf16"] = "auto"

    @model_validator(mode="after")
    def _precision_runs(self) -> CpuTarget:
        if self.precision == "bf16" and self.runtime != "openvino":
            raise ValueError(f"precision {self.precision} needs runtime = \"openvino\"")
        if self.side_by_side > 1 and self.intra_op_threads % self.side_by_side:
            raise ValueError(f"side_by_side = {self.side_by_side} needs intra_op_threads a multiple "
                             f"of it (threads per stream), not {self.intra_op_threads}")
        return self


class TrtTarget(TargetBase):
    # tensorrt: engines built on the node (`imdsr export plans`). torch-cuda: Triton's Python
    # backend running the model's TorchScript with PyTorch on the GPU (KIND_GPU), for GPUs where no
    # plan can be built; fp16 then means PyTorch half precision. See export/serving.toml.
    runtime: Literal["tensorrt", "torch-cuda"] = "tensorrt"
    cuda_graphs: bool = False
    cuda_graph_batch_sizes: list[int] = Field(default_factory=list)
    fp16: bool = True
    workspace_mb: int = Field(1024, ge=16)
    compute_capabilities: list[str] = Field(default_factory=list)
    # The full build (e.g. 10.5.0.18) of the serving image's TensorRT: engines load only there.
    tensorrt_version: str = Field("10.5.0.18", pattern=r"^\d+\.\d+\.\d+(\.\d+)?$")


class ServingConfig(StrictModel):
    # Largest window side (tile core + 2 x context, LR px) a model accepts; engines, warmup and
    # CUDA graphs are shaped by it, and config.pbtxt publishes it to the gateway.
    window: int = Field(320, ge=ALIGN, multiple_of=ALIGN)
    max_batch: int = Field(8, ge=1)
    batching: Batching = Field(default_factory=Batching)
    cpu: CpuTarget = Field(default_factory=CpuTarget)
    gpu: TrtTarget = Field(default_factory=TrtTarget)
    jetson: TrtTarget = Field(default_factory=TrtTarget)

    @model_validator(mode="after")
    def _batches_fit(self) -> ServingConfig:
        for name in TARGETS:
            target = self.target(name)
            limit = self.max_batch_for(name)
            sizes = [*target.warmup_batch_sizes, *self.preferred_batch_sizes_for(name)]
            if isinstance(target, TrtTarget):
                sizes += target.cuda_graph_batch_sizes
            bad = [b for b in sizes if not 1 <= b <= limit]
            if bad:
                raise ValueError(f"[{name}] batch sizes {bad} outside 1..max_batch={limit}")
        return self

    def target(self, name: Target) -> CpuTarget | TrtTarget:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
        return getattr(self, name)

    def max_batch_for(self, name: Target) -> int:
        return self.target(name).max_batch or self.max_batch

    def preferred_batch_sizes_for(self, name: Target) -> list[int]:
        own = self.target(name).preferred_batch_sizes
        return self.batching.preferred_batch_sizes if own is None else own

    def window_limits(self, variant: str | None = None) -> WindowLimits:
        """What a model accepts: the same on cpu, gpu and jetson by construction; ``variant``'s
        architecture may need a smallest window (RLFN's and EFDN's pooling)."""
        if variant is None:
            return WindowLimits(max_side=self.window)
        from training.models.registry import get_variant

        return WindowLimits(max_side=self.window, min_side=get_variant(variant).tiling.min_side)

    def trt_target(self, name: Target) -> TrtTarget:
        target = self.target(name)
        if not isinstance(target, TrtTarget):
            raise ValueError(f"target {name!r} has no TensorRT engines (gpu or jetson do)")
        return target


def load_serving(path: str | Path | None = None) -> ServingConfig:
    """Read a serving TOML (default: the one shipped beside this module)."""
    return load_toml(path or DEFAULT_SERVING_TOML, ServingConfig)
