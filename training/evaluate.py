"""Evaluation: bicubic vs model on HR photos, Y-PSNR/SSIM (BT.601, crop = scale) and RGB-PSNR.

The LR input is made from the (mod-cropped) HR with the project's MATLAB-style bicubic (and, for
the benchmarks' ``--degrade``, then JPEG-compressed), and the bicubic baseline upscales that same
LR with the same function. Metrics come from ``imdsr.imaging.metrics``, the functions training
validation uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imdsr.imaging.metrics import rgb_psnr, y_psnr, y_ssim
from imdsr.imaging.resize import downscale, modcrop, upscale
from training.data.degrade import CLEAN, apply_named

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
    return _render(header, lines, markdown=markdown, right=True)


# -- the standard benchmarks (the paper's Table 3) ------------------------------------------------
BASELINE = "bicubic"


@dataclass
class Cell:
    """Mean Y-PSNR / Y-SSIM of one method on one benchmark set."""

    y_psnr: float
    y_ssim: float


def benchmark_table(models: dict[str, nn.Module], sets: dict[str, list[Path]], scale: int,
                    device: torch.device | str = "cpu", progress: bool = True
                    ) -> dict[str, dict[str, Cell]]:
    """``{method: {set: Cell}}`` for bicubic and each model, as Table 3 is measured: HR
    mod-cropped to the scale, LR by the MATLAB-style bicubic, Y (BT.601), ``scale`` px border."""
    return degraded_benchmark_tables(models, sets, scale, [CLEAN], device, progress)[CLEAN]


def degraded_benchmark_tables(models: dict[str, nn.Module], sets: dict[str, list[Path]], scale: int,
                              degradations: list[str], device: torch.device | str = "cpu",
                              progress: bool = True) -> dict[str, dict[str, dict[str, Cell]]]:
    """``{degradation: {method: {set: Cell}}}``: Table 3's protocol with each named degradation
    (``training/data/degrade.py``: ``clean``, ``jpeg50``, ...) applied to the LR before bicubic
    and the models see it; scored against the clean HR. One pass over the images."""
    from tqdm import tqdm

    from training.data.pairs import load_rgb

    for m in models.values():
        m.eval()
    scores: dict[str, dict[str, dict[str, list[Scores]]]] = {
        d: {k: {s: [] for s in sets} for k in (BASELINE, *models)} for d in degradations}
    total = sum(len(files) for files in sets.values())
    with tqdm(total=total, desc="benchmarks", unit="img", disable=not progress) as bar:
        for set_name, files in sets.items():
            for path in files:
                hr = modcrop(load_rgb(path), scale)
                clean = downscale(hr, scale)
                for deg in degradations:
                    lr, by_method = apply_named(clean, deg), scores[deg]
                    by_method[BASELINE][set_name].append(score(upscale(lr, scale), hr, scale))
                    for label, model in models.items():
                        sr = super_resolve(model, lr, device)
                        by_method[label][set_name].append(score(sr, hr, scale))
                bar.set_postfix(set=set_name)
                bar.update(1)
    return {deg: {label: {s: Cell(float(np.mean([c.y_psnr for c in cells])),
                                  float(np.mean([c.y_ssim for c in cells])))
                          for s, cells in by_set.items()}
                  for label, by_set in by_method.items()}
            for deg, by_method in scores.items()}


def _benchmark_lines(table: dict[str, dict[str, Cell]]) -> tuple[list[str], list[list[str]]]:
    sets = list(next(iter(table.values())))
    mean = len(sets) > 1  # the mean PSNR over the sets: what a shipping decision compares
    header = ["method", *(f"{s} PSNR / SSIM" for s in sets), *(["mean PSNR"] if mean else [])]
    lines = [[label, *(f"{c.y_psnr:.2f} / {c.y_ssim:.4f}" for c in row.values()),
              *([f"{np.mean([c.y_psnr for c in row.values()]):.2f}"] if mean else [])]
             for label, row in table.items()]
    return header, lines


def format_benchmark_table(table: dict[str, dict[str, Cell]], markdown: bool = False) -> str:
    """Rows = methods, columns = sets, each ``PSNR / SSIM`` (Table 3's layout)."""
    return _render(*_benchmark_lines(table), markdown=markdown, right=False)


def format_degraded_benchmark(tables: dict[str, dict[str, dict[str, Cell]]],
                              markdown: bool = False) -> str:
    """Table 3's layout with the LR input first: one block of rows per degradation, so clean
    and degraded scores of each method read side by side."""
    blocks = {deg: _benchmark_lines(table) for deg, table in tables.items()}
    header = ["LR", *next(iter(blocks.values()))[0]]
    lines = [[deg, *line] for deg, (_, block) in blocks.items() for line in block]
    return _render(header, lines, markdown=markdown, right=False)


def _render(header: list[str], lines: list[list[str]], markdown: bool, right: bool) -> str:
    """A Markdown table, or aligned plain-text columns (numbers right-aligned if ``right``)."""
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    just = str.rjust if right else str.ljust
    fmt = lambda cells: "  ".join(just(c, w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([fmt(header), *(fmt(line) for line in lines)])
