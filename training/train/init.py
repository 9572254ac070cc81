"""The bicubic start: set head and tail so the untrained network outputs x``s`` bicubic.

Works for every registered architecture (IMDeception and its NTIRE 2022 peers IMDN, RLFN,
EFDN): each has a ``head`` (3x3 conv 3 -> C), a ``tail`` (3x3 conv C -> 3 s^2 before
pixel_shuffle), a ``scale``, and a ``residual_out`` property naming the conv whose zeroing
leaves ``tail(head(x))``: IMDeception's ``fuse3x3`` (``G = lrelu(0) + F0 = F0``), the peers'
``body_out`` (``deep = 0 + shallow``).

IMDeception has no input-to-output skip, so from a random start it first spends thousands of
steps learning to interpolate (the peers neither). Head and tail can represent MATLAB bicubic
upscaling exactly: the head writes the 9 shifted copies of each of R, G, B (27 channels), the
tail combines them, which spans offsets -2..2, the 5x5 support bicubic has per output phase.
With ``residual_out`` at zero the network is bicubic (up to border handling: zero padding
instead of MATLAB's mirror). The other head channels keep their random init (the residual
branch needs features to work on) but the tail reads nothing from them yet.

Heads narrower than 27 channels (IMDeception core 4: 16; every peer has 42 or more) cannot hold
all shifted copies. ``fit_linear_start`` then fits head+tail, as a purely linear network, to the
HR crops by least squares (Adam on MSE), starting from a luma/chroma construction: 9 shifted
copies of a luma signal carry the detail, the remaining channels carry chroma centre samples.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imdsr.imaging.resize import contributions

SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def bicubic_phase_weights(scale: int) -> np.ndarray:
    """(scale, 5) weights of MATLAB x``scale`` bicubic: phase p reads LR offsets -2..2."""
    n = 16
    c = contributions(n, n * scale, float(scale), antialias=False)
    j = n // 2  # an interior LR pixel, far from the mirrored border
    out = np.zeros((scale, 5))
    for p in range(scale):
        row = j * scale + p
        for w, idx in zip(c.weights[row], c.indices[row], strict=True):
            off = int(idx) - j
            if w != 0:
                out[p, off + 2] += w
    return out


def _split(offset: int) -> tuple[int, int]:
    """Composite offset -2..2 -> (head shift, tail tap), each in -1..1."""
    head = max(-1, min(1, offset))
    return head, offset - head


def _tail_from_sources(model: nn.Module, sources: dict[int, list[tuple[int, int, int, float]]]
                       ) -> None:
    """Fill the tail so each output phase is the separable bicubic of its colour.

    ``sources[colour]`` lists head channels as (channel, dy, dx, gain): shifted copies of a
    signal; the tail reads them so that the composite is bicubic of that signal times gain.
    """
    s = model.scale
    w1 = torch.tensor(bicubic_phase_weights(s), dtype=torch.float32)
    tail = torch.zeros_like(model.tail.weight)
    for colour, chans in sources.items():
        for py in range(s):
            for px in range(s):
                out_ch = colour * s * s + py * s + px
                for oy in range(-2, 3):
                    hy, ty = _split(oy)
                    for ox in range(-2, 3):
                        hx, tx = _split(ox)
                        for ch, dy, dx, gain in chans:
                            if (dy, dx) == (hy, hx):
                                tail[out_ch, ch, ty + 1, tx + 1] += (
                                    gain * w1[py, oy + 2] * w1[px, ox + 2])
    with torch.no_grad():
        model.tail.weight.copy_(tail)
        model.tail.bias.zero_()


def _residual_out(model: nn.Module) -> nn.Conv2d:
    """The model's ``residual_out`` conv; a clear error for a model without the start contract."""
    conv = getattr(model, "residual_out", None)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{type(model).__name__} has no `residual_out` conv: the bicubic start needs "
                        "head, tail, scale and residual_out (see training/models/frame.py)")
    return conv


def _zero_residual(model: nn.Module) -> None:
    conv = _residual_out(model)
    with torch.no_grad():
        conv.weight.zero_()
        if conv.bias is not None:
            conv.bias.zero_()


def bicubic_start(model: nn.Module) -> None:
    """Exact bicubic start; needs a head of at least 27 channels."""
    _residual_out(model)  # refuse before touching head or tail
    width = model.head.out_channels
    if width < 27:
        raise ValueError(f"head has {width} channels; exact bicubic needs 27 (use fit_linear_start)")
    head_w = model.head.weight.detach().clone()
    head_b = model.head.bias.detach().clone()
    sources: dict[int, list[tuple[int, int, int, float]]] = {0: [], 1: [], 2: []}
    for colour in range(3):
        for k, (dy, dx) in enumerate(SHIFTS):
            ch = colour * 9 + k
            head_w[ch].zero_()
            # Correlation: weight tap (1+dy, 1+dx) reads input at (y+dy, x+dx).
            head_w[ch, colour, 1 + dy, 1 + dx] = 1.0
            head_b[ch] = 0.0
            sources[colour].append((ch, dy, dx, 1.0))
    with torch.no_grad():
        model.head.weight.copy_(head_w)
        model.head.bias.copy_(head_b)
    _tail_from_sources(model, sources)
    _zero_residual(model)


def _luma_chroma_construction(model: nn.Module) -> None:
    """Narrow heads: 9 shifted copies of luma L=(R+G+B)/3 plus centred R-L and B-L samples."""
    _residual_out(model)
    width = model.head.out_channels
    if width < 11:
        raise ValueError(f"head has {width} channels; the linear start needs at least 11")
    head_w = torch.zeros_like(model.head.weight)
    head_b = torch.zeros_like(model.head.bias)
    with torch.no_grad():
        # Channels past 11 keep a small random init so the residual branch has features.
        head_w[11:] = model.head.weight[11:] * 0.1
    luma: list[tuple[int, int, int, float]] = []
    for k, (dy, dx) in enumerate(SHIFTS):
        head_w[k, :, 1 + dy, 1 + dx] = 1.0 / 3.0
        luma.append((k, dy, dx, 1.0))
    for ch, colour in ((9, 0), (10, 2)):  # R - L and B - L at the centre tap
        head_w[ch, :, 1, 1] = -1.0 / 3.0
        head_w[ch, colour, 1, 1] += 1.0
    with torch.no_grad():
        model.head.weight.copy_(head_w)
        model.head.bias.copy_(head_b)
    # R = L + (R-L), B = L + (B-L), G = L - (R-L) - (B-L); chroma only from centre samples.
    sources = {
        0: luma + [(9, 0, 0, 1.0)],
        1: luma + [(9, 0, 0, -1.0), (10, 0, 0, -1.0)],
        2: luma + [(10, 0, 0, 1.0)],
    }
    _tail_from_sources(model, sources)
    _zero_residual(model)


def linear_path(model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
    """The network's output when the residual branch is zero: tail(head(x)), shuffled."""
    return F.pixel_shuffle(model.tail(model.head(lr)), model.scale)


def fit_linear_start(model: nn.Module, batches, steps: int = 300, lr: float = 1e-4) -> list[float]:
    """Luma/chroma construction, then least-squares refinement of head+tail to the HR targets.

    ``batches(i)`` returns (lr, hr) float tensors for fitting step ``i``. Only head and tail are
    optimised; the residual branch stays at zero, so the result is the best linear upsampler
    this head/tail shape can express on these photos. Returns the loss history.
    """
    _luma_chroma_construction(model)
    params: list[nn.Parameter] = [model.head.weight, model.head.bias,
                                  model.tail.weight, model.tail.bias]
    opt = torch.optim.Adam(params, lr=lr)
    history = []
    for i in range(steps):
        x, y = batches(i)
        loss = F.mse_loss(linear_path(model, x)[..., 8:-8, 8:-8], y[..., 8:-8, 8:-8])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    _zero_residual(model)
    return history


def apply_start(model: nn.Module, kind: str, variant: str, batches=None, fit_steps: int = 300) -> str:
    """Apply the configured start to ``model`` (built as ``variant``); returns what was done (for
    logs and the model card)."""
    if kind == "default":
        return "default PyTorch init"
    if kind.startswith("weights:"):
        # Warm restart from an imdsr weights file (e.g. a shipped model, for a second LR cycle).
        from training.weights.store import load_into

        path = kind.split(":", 1)[1]
        meta = load_into(model, path, variant, model.scale)
        return f"warm start from {path} ({meta.source})"
    if kind != "bicubic":
        raise ValueError(f"unknown init {kind!r}: 'bicubic', 'default' or 'weights:PATH'")
    if model.head.out_channels >= 27:
        bicubic_start(model)
        return "exact bicubic start"
    if batches is None:
        _luma_chroma_construction(model)
        return "luma/chroma bicubic approximation"
    fit_linear_start(model, batches, steps=fit_steps)
    return f"luma/chroma construction + {fit_steps}-step least-squares fit of head/tail"
