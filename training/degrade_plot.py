"""One PNG: Y-PSNR against the LR's JPEG quality, per method and benchmark set, from
``imdsr eval --benchmark ... --degrade jpeg30,...,jpeg95 --plot FILE``.

Where two models' curves cross is where the gateway should stop sending JPEGs to the
JPEG-robust one (service/model_choice.py ``jpeg_quality_below``, docs/MODEL_CARD.md).
"""

from __future__ import annotations

from pathlib import Path

from training.evaluate import Cell

CLEAN = "clean"


def jpeg_quality(name: str) -> int | None:
    return int(name.removeprefix("jpeg")) if name.startswith("jpeg") else None


def crossing(tables: dict[str, dict[str, dict[str, Cell]]], a: str, b: str, set_name: str) -> int | None:
    """The lowest measured JPEG quality at which ``a`` no longer beats ``b`` on ``set_name``
    (None when ``a`` wins at every measured quality)."""
    qualities = sorted(q for d in tables if (q := jpeg_quality(d)) is not None)
    for q in qualities:
        row = tables[f"jpeg{q}"]
        if row[a][set_name].y_psnr <= row[b][set_name].y_psnr:
            return q
    return None


def plot_jpeg_curves(tables: dict[str, dict[str, dict[str, Cell]]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless
    import matplotlib.pyplot as plt

    qualities = sorted(q for d in tables if (q := jpeg_quality(d)) is not None)
    methods = list(next(iter(tables.values())))
    sets = list(next(iter(next(iter(tables.values())).values())))
    fig, axes = plt.subplots(1, len(sets), figsize=(5.2 * len(sets), 4.0), squeeze=False)
    for ax, set_name in zip(axes[0], sets, strict=True):
        for i, method in enumerate(methods):
            colour = f"C{i}"
            ys = [tables[f"jpeg{q}"][method][set_name].y_psnr for q in qualities]
            ax.plot(qualities, ys, marker="o", ms=3, color=colour, label=method)
            if CLEAN in tables:  # the clean LR's score: where each curve heads as q -> 100
                ax.axhline(tables[CLEAN][method][set_name].y_psnr, color=colour, ls=":", lw=1)
        ax.set_title(f"{set_name}: LR saved as JPEG (dotted: clean LR)")
        ax.set_xlabel("JPEG quality of the LR (4:2:0, PIL)")
        ax.set_ylabel("Y-PSNR to the HR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
