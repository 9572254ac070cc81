"""Device and process-group setup: CPU, one CUDA GPU, or torchrun DDP across GPUs."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def setup(threads: int = 0) -> Runtime:
    if threads > 0:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        # Launched by torchrun: one process per GPU (gloo on CPU-only hosts, for tests).
        local = int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        else:
            device = torch.device("cpu")
        return Runtime(device, dist.get_rank(), world)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Runtime(device)


def barrier(rt: Runtime) -> None:
    if rt.world > 1:
        dist.barrier()


def teardown(rt: Runtime) -> None:
    if rt.world > 1:
        dist.destroy_process_group()
