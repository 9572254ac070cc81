"""Complexity of a model at a given input size, by NTIRE 2022's counting conventions.

FLOPs = conv multiply-accumulates + one per element that goes through an activation function
(ReLU/LeakyReLU modules, and IMDeception's functional ones after its grouped blocks and fuses);
activations = elements of all conv outputs; #conv = Conv2d layers (a grouped conv counts once).
The attention's two matrix products are not convolutions, so NTIRE's counter (module hooks on
convs and activation layers) leaves them out; we report them separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from training.models.imdeception import BlockNonLocalAttention, Gblock


@dataclass(frozen=True)
class Complexity:
    params: int
    conv_macs: int
    activation_elems: int  # elements passed through ReLU/LeakyReLU
    conv_output_elems: int  # NTIRE's "#Acts"
    attention_macs: int
    n_conv: int

    @property
    def flops(self) -> int:
        return self.conv_macs + self.activation_elems


def _activated_convs(model: nn.Module) -> set[nn.Module]:
    """Conv layers whose outputs go straight into an activation in IMDeception's forward."""
    out: set[nn.Module] = set()
    for m in model.modules():
        if isinstance(m, Gblock):
            out.update((m.grouped, m.mix))  # ReLU inside; LeakyReLU on the Gblock's output
    for name in ("fuse1x1", "fuse3x3"):
        if hasattr(model, name):
            out.add(getattr(model, name))
    return out


def measure(model: nn.Module, height: int = 256, width: int = 256) -> Complexity:
    activated = _activated_convs(model)
    totals = {"macs": 0, "act": 0, "outs": 0, "attn": 0}

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        totals["macs"] += out.numel() * (m.in_channels // m.groups) * k
        totals["outs"] += out.numel()
        if m in activated:
            totals["act"] += out.numel()

    def attn_hook(m: BlockNonLocalAttention, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        n, _, h, w = inp[0].shape
        r = m.region
        regions = n * -(-h // r) * -(-w // r)
        tokens = (r // m.patch) ** 2
        d = m.q * m.patch * m.patch
        totals["attn"] += 2 * regions * tokens * tokens * d  # Q K^T and A V

    def act_hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        totals["act"] += out.numel()

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(act_hook) for m in model.modules()
                if isinstance(m, nn.ReLU | nn.LeakyReLU)]
    handles += [m.register_forward_hook(attn_hook) for m in model.modules()
                if isinstance(m, BlockNonLocalAttention)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        conv_macs=totals["macs"],
        activation_elems=totals["act"],
        conv_output_elems=totals["outs"],
        attention_macs=totals["attn"],
        n_conv=sum(isinstance(m, nn.Conv2d) for m in model.modules()),
    )
