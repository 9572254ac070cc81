"""Local (server-less) inference: image files in, 4x image files out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from imdsr.imaging.tiling import ALIGN, DEFAULT_CONTEXT, DEFAULT_TILE, upscale_tiled
from training.weights.store import load_model


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but is not available on this machine")
    return torch.device(name)


def load_on(variant: str, weights: Path | None, device: torch.device, scale: int = 4) -> torch.nn.Module:
    model, _ = load_model(variant, weights, scale)
    return model.to(device)


def read_rgb8(path: Path) -> np.ndarray:
    """An image file as HxWx3 uint8 RGB, EXIF orientation applied."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return np.asarray(im.convert("RGB"))


def upscale_array(model: torch.nn.Module, rgb8: np.ndarray, device: torch.device,
                  tile: int = DEFAULT_TILE, context: int = DEFAULT_CONTEXT) -> np.ndarray:
    """x``scale`` of an HxWx3 uint8 image, through the same tiler the gateway uses.

    Tiling bounds memory for images of any size (within 1 level of whole-image inference);
    ``tile=0`` runs the whole image at once.
    """

    @torch.inference_mode()
    def run(nchw: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(nchw).to(device)).float().cpu().numpy()

    if tile <= 0:
        tile = max(rgb8.shape[:2]) + ALIGN - max(rgb8.shape[:2]) % ALIGN
        context = 0
    return upscale_tiled(rgb8, run, model.scale, tile, context)


def output_path(src: Path, outdir: Path, scale: int) -> Path:
    return outdir / f"{src.stem}_x{scale}.png"
