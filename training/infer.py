"""Local (server-less) inference: image files in, 4x image files out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from training.models import create_model
from training.weights.store import load_into, shipped_weights


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but is not available on this machine")
    return torch.device(name)


def load_model(variant: str, weights: Path | None, device: torch.device, scale: int = 4) -> torch.nn.Module:
    model = create_model(variant, scale=scale)
    load_into(model, weights or shipped_weights(variant), variant, scale)
    return model.eval().to(device)


def read_rgb8(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, EXIF orientation applied."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"))


@torch.inference_mode()
def upscale_array(model: torch.nn.Module, rgb8: np.ndarray, device: torch.device) -> np.ndarray:
    # Pillow hands out read-only arrays; torch wants a writable one.
    x = torch.from_numpy(np.array(rgb8, copy=True)).permute(2, 0, 1).unsqueeze(0)
    x = x.to(device, torch.float32) / 255.0
    y = model(x).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return y.squeeze(0).permute(1, 2, 0).cpu().numpy()


def output_path(src: Path, outdir: Path, scale: int) -> Path:
    return outdir / f"{src.stem}_x{scale}.png"
