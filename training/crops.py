"""A picture a person can judge: the same crops of one photo, LR saved as JPEG, upscaled by
bicubic and by each model, beside the HR (``imdsr model crops``; docs/MODEL_CARD.md).

The LR is made as the benchmarks make it (MATLAB-style bicubic of the mod-cropped HR, then the
named degradation, ``training/data/degrade.py``), so the picture shows what the tables measure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from imdsr.imaging.metrics import y_psnr
from imdsr.imaging.resize import downscale, modcrop, upscale
from training.data.degrade import apply_named
from training.evaluate import super_resolve


def parse_box(text: str) -> tuple[int, int, int]:
    """``"x,y,size"`` in HR pixels -> (x, y, size)."""
    try:
        x, y, size = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"box {text!r}: give x,y,size in HR pixels, e.g. 120,64,96") from None
    if size < 8 or x < 0 or y < 0:
        raise ValueError(f"box {text!r}: x, y >= 0 and size >= 8")
    return x, y, size


def crops_figure(hr: np.ndarray, models: dict[str, nn.Module], degradation: str,
                 boxes: list[tuple[int, int, int]], out: Path, scale: int = 4,
                 title: str = "") -> Path:
    """One row per box: LR (nearest, as received), bicubic, each model, HR; each panel titled
    with its method and its Y-PSNR over the whole image."""
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    hr = modcrop(hr, scale)
    lr = apply_named(downscale(hr, scale), degradation)
    panels: list[tuple[str, np.ndarray]] = [
        (f"LR ({degradation})", np.repeat(np.repeat(lr, scale, 0), scale, 1)),
        ("bicubic", upscale(lr, scale))]
    panels += [(name, super_resolve(model.eval(), lr)) for name, model in models.items()]
    panels.append(("HR", hr))
    for x, y, size in boxes:
        if x + size > hr.shape[1] or y + size > hr.shape[0]:
            raise ValueError(f"box {x},{y},{size} leaves the {hr.shape[1]}x{hr.shape[0]} image")
    fig, axes = plt.subplots(len(boxes), len(panels), figsize=(2.4 * len(panels), 2.6 * len(boxes)),
                             squeeze=False)
    for r, (x, y, size) in enumerate(boxes):
        for c, (name, img) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img[y:y + size, x:x + size], interpolation="nearest")
            label = name if name.startswith(("LR", "HR")) else f"{name}\n{y_psnr(img, hr, scale):.2f} dB"
            ax.set_title(label if r == 0 else "", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
