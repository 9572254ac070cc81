"""One PNG per run: training loss, validation PSNR (model vs bicubic) and LR against step."""

from __future__ import annotations

import csv
from pathlib import Path


def _floats(rows: list[dict[str, str]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        if r.get(key):
            xs.append(int(r["step"]))
            ys.append(float(r[key]))
    return xs, ys


def _save(fig, axes, title: str, png_path: Path) -> Path:  # noqa: ANN001 - matplotlib objects
    """Step axes with a grid, the title, and the PNG written."""
    import matplotlib.pyplot as plt

    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path


def plot_run(csv_path: Path, png_path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless: training hosts have no display
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].plot(*_floats(rows, "loss"))
    axes[0].set_yscale("log")
    axes[0].set_title("training loss")
    axes[1].plot(*_floats(rows, "val_y_psnr"), "o-", label="model (EMA)")
    axes[1].plot(*_floats(rows, "val_bicubic_y_psnr"), "--", label="bicubic")
    axes[1].set_title("validation Y-PSNR (dB)")
    axes[1].legend()
    axes[2].plot(*_floats(rows, "lr"))
    axes[2].set_title("learning rate")
    return _save(fig, axes, title, png_path)


def plot_loss_comparison(runs: dict[str, Path], png_path: Path, last_step: int, title: str = ""
                         ) -> Path:
    """Training loss (and validation Y-PSNR) of several runs' ``metrics.csv`` up to ``last_step``
    on one plot: e.g. the same run in bf16 and in f32, same start and batches."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, csv_path in runs.items():
        with csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
        axes[0].plot(*_floats(rows, "loss"), label=label)
        axes[1].plot(*_floats(rows, "val_y_psnr"), "o-", label=label)
    axes[0].set_title("training loss (mean of 10 steps)")
    axes[1].set_title("validation Y-PSNR (dB)")
    for ax in axes:
        ax.legend()
    return _save(fig, axes, title, png_path)
