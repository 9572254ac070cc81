"""Evaluation: bicubic vs model on HR photos, Y-PSNR/SSIM (BT.601, crop = scale) and RGB-PSNR.

The LR input is made from the (mod-cropped) HR with the project's MATLAB-style bicubic, and the
bicubic baseline upscales that same LR with the same function. Metrics come from
``imdsr.imaging.metrics``, the functions training validation uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imdsr.imaging.metrics import rgb_psnr, y_psnr, y_ssim
from imdsr.imaging.resize import downscale, modcrop, upscale

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left")


@dataclass
class Scores:
    y_psnr: float
    y_ssim: float
    rgb_psnr: float


@dataclass
class Row:
    name: str
    bicubic: Scores
    model: Scores


def score(sr: np.ndarray, hr: np.ndarray, crop: int) -> Scores:
    return Scores(y_psnr(sr, hr, crop), y_ssim(sr, hr, crop), rgb_psnr(sr, hr, crop))


@torch.no_grad()
def super_resolve(model: nn.Module, lr: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """uint8 HxWx3 LR -> uint8 HR, rounded and clipped as a saved image would be."""
    x = torch.from_numpy(np.ascontiguousarray(lr).transpose(2, 0, 1)[None].astype(np.float32) / 255)
    y = model(x.to(device)).float().clamp(0, 1)[0].cpu().numpy().transpose(1, 2, 0)
    return np.round(y * 255).astype(np.uint8)


def evaluate_pair(model: nn.Module, name: str, hr: np.ndarray, lr: np.ndarray, scale: int,
                  device: torch.device | str = "cpu") -> Row:
    sr = super_resolve(model, lr, device)
    bic = upscale(lr, scale)
    return Row(name, score(bic, hr, scale), score(sr, hr, scale))


def skimage_photos() -> list[tuple[str, np.ndarray]]:
    """The five evaluation photos, read from the files inside scikit-image's wheel."""
    import skimage

    from training.data.pairs import load_rgb

    folder = Path(skimage.__file__).parent / "data"
    out = []
    for name in SKIMAGE_PHOTOS:
        path = next(p for p in folder.glob(f"{name}.*") if p.suffix in {".png", ".jpg"})
        out.append((name, load_rgb(path)))
    return out


def folder_photos(folder: Path) -> list[tuple[str, np.ndarray]]:
    from training.data.pairs import load_rgb
    from training.data.photos import list_images

    return [(p.stem, load_rgb(p)) for p in list_images(folder)]


def evaluate_images(model: nn.Module, images: list[tuple[str, np.ndarray]], scale: int,
                    device: torch.device | str = "cpu") -> list[Row]:
    model.eval()
    rows = []
    for name, img in images:
        hr = modcrop(img, scale)
        rows.append(evaluate_pair(model, name, hr, downscale(hr, scale), scale, device))
    return rows


def mean_row(rows: list[Row]) -> Row:
    def avg(get) -> float:
        return float(np.mean([get(r) for r in rows]))

    def scores(which: str) -> Scores:
        return Scores(avg(lambda r: getattr(r, which).y_psnr),
                      avg(lambda r: getattr(r, which).y_ssim),
                      avg(lambda r: getattr(r, which).rgb_psnr))

    return Row("mean", scores("bicubic"), scores("model"))


def format_table(rows: list[Row], markdown: bool = False) -> str:
    header = ["image", "bicubic Y-PSNR", "model Y-PSNR", "diff dB", "bicubic SSIM", "model SSIM",
              "diff SSIM", "bicubic RGB-PSNR", "model RGB-PSNR", "diff dB"]
    lines = []
    for r in [*rows, mean_row(rows)]:
        b, m = r.bicubic, r.model
        lines.append([r.name, f"{b.y_psnr:.2f}", f"{m.y_psnr:.2f}", f"{m.y_psnr - b.y_psnr:+.2f}",
                      f"{b.y_ssim:.4f}", f"{m.y_ssim:.4f}", f"{m.y_ssim - b.y_ssim:+.4f}",
                      f"{b.rgb_psnr:.2f}", f"{m.rgb_psnr:.2f}", f"{m.rgb_psnr - b.rgb_psnr:+.2f}"])
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(header), *(fmt(line) for line in lines)])
