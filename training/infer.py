"""Local (server-less) inference: the gateway's picture pipeline with PyTorch running the tiles.

Decoding, tiling, alpha, 16-bit, grey and ICC handling, and encoding are the gateway's own
(``imdsr.imaging``), so a file upscaled here equals the one ``POST /upscale`` returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from imdsr.contract import SCALE
from imdsr.imaging import codec
from imdsr.imaging.geometry import final_size
from imdsr.imaging.pipeline import SyncTileInfer, UpscaleResult, upscale_sync
from imdsr.imaging.tiling import DEFAULT_TILE, TilingRule
from imdsr.imaging.windows import choose_tile
from training.weights.store import load_model

# A local file may be as large as memory allows; the tiler bounds the model's share of it.
MAX_LOCAL_PIXELS = 1 << 28


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but is not available on this machine")
    return torch.device(name)


def load_on(variant: str, weights: Path | None, device: torch.device, scale: int = SCALE) -> torch.nn.Module:
    model, _ = load_model(variant, weights, scale)
    return model.to(device)


def torch_infer(model: torch.nn.Module, device: torch.device) -> SyncTileInfer:
    """The pipeline's ``infer``: NCHW float32 in [0, 1] -> NCHW float32 through ``model``."""

    @torch.inference_mode()
    def run(nchw: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(nchw).to(device)).float().cpu().numpy()

    return run


def upscale_picture(model: torch.nn.Module, picture: codec.Picture, device: torch.device,
                    tile: int = DEFAULT_TILE, rule: TilingRule | None = None,
                    outscale: float | None = None) -> UpscaleResult:
    """x4 (or ``outscale``) of a decoded picture, tiles placed by the model's ``rule`` (default:
    IMDeception's); ``tile=0`` runs the whole image at once, as does the rule where it says so.
    The tile is the gateway's choice (``choose_tile``); PyTorch has no window limit."""
    rule = rule or TilingRule()
    tile = choose_tile(rule, None, picture.height, picture.width, requested=tile)
    final = final_size(picture.height, picture.width, outscale=outscale)
    return upscale_sync(picture, torch_infer(model, device), tile=tile, rule=rule, final=final)


def upscale_array(model: torch.nn.Module, rgb: np.ndarray, device: torch.device,
                  tile: int = DEFAULT_TILE, rule: TilingRule | None = None) -> np.ndarray:
    """x4 of an HxWx3 uint8/uint16 array (no alpha): the pipeline without a file around it."""
    picture = codec.Picture(color=rgb, alpha=None, gray=False, source_format="PNG")
    return upscale_picture(model, picture, device, tile, rule).picture.color


def output_path(src: Path, outdir: Path, scale: int, fmt: codec.OutputFormat) -> Path:
    return outdir / f"{src.stem}_x{scale}{fmt.suffix}"
