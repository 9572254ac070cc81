"""Pixel losses of the recipe: Charbonnier (phase 1), L2 (phase 2), L1 (option)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float) -> torch.Tensor:
    """mean(sqrt((pred - target)^2 + eps^2)); eps on the data's own scale ([0, 1] here)."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def make_loss(name: str, eps: float = 0.1):
    if name == "charbonnier":
        return lambda p, t: charbonnier(p, t, eps)
    if name == "l1":
        return F.l1_loss
    if name == "l2":
        return F.mse_loss
    raise ValueError(f"unknown loss {name!r}: charbonnier | l1 | l2")
