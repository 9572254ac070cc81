"""Complexity of a model at a given input size, by NTIRE 2022's counting conventions.

FLOPs = conv multiply-accumulates + one per element that goes through an activation function;
activations = elements of all conv outputs; #conv = Conv2d layers (a grouped conv counts once).
NTIRE's counter sees activation layers (ReLU/LeakyReLU modules) by their hooks; what it sees in
the published code but hooks cannot see here, a model's modules declare, so that this counter
knows no architecture by name:

* ``activated_convs()``: convs whose outputs go through a functional activation (``F.relu``...);
  each output element counts once;
* ``matmul_macs(x)``: multiply-accumulates of matrix products a module makes of its input ``x``
  (attention). They are not convolutions, so NTIRE's counter leaves them out: reported apart;
* ``functional_conv_macs(x, y)``: multiply-accumulates of convolutions the published code runs
  as ``F.conv2d`` with fixed weights and this module computes otherwise, for its input ``x`` and
  output ``y`` (SRneXt's DF2K mean shift: NTIRE 2023's counter counted them). Counted in FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from training.models.registry import VariantSpec

ACTIVATION_LAYERS = (nn.ReLU, nn.LeakyReLU)


@dataclass(frozen=True)
class Complexity:
    params: int
    conv_macs: int
    activation_elems: int  # elements passed through an activation
    conv_output_elems: int  # NTIRE's "#Acts"
    attention_macs: int     # the declared matrix products (``matmul_macs``)
    n_conv: int
    n_conv_split: int       # #conv with each grouped conv counted once per group

    @property
    def flops(self) -> int:
        return self.conv_macs + self.activation_elems


def _activated_convs(model: nn.Module) -> set[nn.Module]:
    out: set[nn.Module] = set()
    for m in model.modules():
        declared = getattr(m, "activated_convs", None)
        if callable(declared):
            out.update(declared())
    return out


def measure(model: nn.Module, height: int = 256, width: int = 256) -> Complexity:
    activated = _activated_convs(model)
    totals = {"macs": 0, "act": 0, "outs": 0, "matmul": 0}

    def conv_hook(m: nn.Conv2d, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        totals["macs"] += out.numel() * (m.in_channels // m.groups) * k
        totals["outs"] += out.numel()
        if m in activated:
            totals["act"] += out.numel()

    def matmul_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        totals["matmul"] += m.matmul_macs(inp[0])

    def act_hook(_m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        totals["act"] += out.numel()

    def functional_hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        totals["macs"] += m.functional_conv_macs(inp[0], out)

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_hook(conv_hook) for m in convs]
    handles += [m.register_forward_hook(act_hook) for m in model.modules()
                if isinstance(m, ACTIVATION_LAYERS)]
    handles += [m.register_forward_hook(matmul_hook) for m in model.modules()
                if callable(getattr(m, "matmul_macs", None))]
    handles += [m.register_forward_hook(functional_hook) for m in model.modules()
                if callable(getattr(m, "functional_conv_macs", None))]
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
        attention_macs=totals["matmul"],
        n_conv=len(convs),
        n_conv_split=sum(m.groups for m in convs),
    )


def _decimals(printed: float) -> int:
    return len(repr(printed).partition(".")[2])


def _as_printed(ours: float, printed: float) -> bool:
    """``ours`` agrees with a figure printed to some decimals: within one unit of its last digit
    (tables round, factsheets sometimes truncate: SRneXt's 244,558 parameters are "0.2445 M")."""
    return abs(ours - printed) < 10.0 ** -_decimals(printed)


def against_challenge(c: Complexity, spec: VariantSpec) -> list[str]:
    """How ``c`` (measured at 256x256) differs from ``spec``'s challenge row, figure by figure, at
    the table's precision; empty: params, FLOPs, activations and #conv all match."""
    row = spec.challenge
    if row is None:
        return []
    convs = c.n_conv_split if spec.architecture.published_splits_groups else c.n_conv
    checks = [
        ("params", _as_printed(c.params / 1e6, row.params_m),
         f"{c.params / 1e6:.{_decimals(row.params_m)}f}M", f"{row.params_m}M"),
        ("FLOPs", _as_printed(c.flops / 1e9, row.flops_g),
         f"{c.flops / 1e9:.{_decimals(row.flops_g)}f}G", f"{row.flops_g}G"),
        # NTIRE's activations differ from ours in the last digit for IMDeception (206.05 / 206.06)
        ("activations", abs(c.conv_output_elems / 1e6 - row.acts_m) < 0.1,
         f"{c.conv_output_elems / 1e6:.2f}M", f"{row.acts_m}M"),
        ("#conv", convs == row.convs, str(convs), str(row.convs)),
    ]
    return [f"{what} {ours} here, {theirs} in the table" for what, same, ours, theirs in checks if not same]
