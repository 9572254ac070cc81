"""Turn a run's best checkpoint into a project weights file (EMA weights + training summary)."""

from __future__ import annotations

import csv
import platform
from pathlib import Path
from typing import Any

import torch

from training.train.checkpoint import BEST, LAST, load_checkpoint
from training.weights.store import WeightsMeta, save_weights


def _hardware() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}"


def _data_summary(data: dict[str, Any]) -> str:
    """``root`` for one folder; ``root (weight w)`` for each set of a mix."""
    sets = data.get("sets") or []
    if not sets:
        return data["root"]
    return ", ".join(f"{s['root']} (weight {s['weight']:g})" if s["weight"] else s["root"]
                     for s in sets)


def training_summary(run_dir: Path, ck: dict[str, Any], extra: dict[str, Any] | None = None
                     ) -> dict[str, Any]:
    cfg, state = ck["config"], ck["state"]
    last = load_checkpoint(run_dir / LAST)["state"] if (run_dir / LAST).exists() else state
    rows = []
    if (run_dir / "metrics.csv").exists():
        with (run_dir / "metrics.csv").open() as f:
            rows = [r for r in csv.DictReader(f) if r.get("val_y_psnr")]
    summary = {
        "run": cfg["name"], "data": _data_summary(cfg["data"]), "init": state.get("init_note", ""),
        "cpu_bf16": cfg.get("cpu_bf16", False),
        "phases": [cfg["phase1"]] + ([cfg["phase2"]] if cfg.get("phase2") else []),
        "charbonnier_eps": cfg["charbonnier_eps"], "ema_decay": cfg["ema_decay"],
        "best_step": state["best_step"], "steps_total": last["step"],
        "wall_s_to_best": round(state["wall_s"], 1), "wall_s_total": round(last["wall_s"], 1),
        "val_y_psnr_best": round(state["best_psnr"], 4),
        "val_bicubic_y_psnr": float(rows[-1]["val_bicubic_y_psnr"]) if rows else None,
        "hardware": _hardware(), "weights": "EMA",
    }
    summary.update(extra or {})
    return summary


def same_structure(trained: str, shipped_as: str) -> bool:
    """Whether weights trained as ``trained`` fit ``shipped_as`` exactly (one architecture, the
    same options): a fine-tune ships under a variant name of its own (c16nla -> c16nla_real)."""
    from training.models.registry import get_variant

    a, b = get_variant(trained), get_variant(shipped_as)
    return a.arch == b.arch and a.options == b.options


def ship(run_dir: Path, out: Path, which: str = BEST, extra: dict[str, Any] | None = None,
         variant: str | None = None) -> Path:
    """Write the run's EMA weights, named ``variant`` (default: the variant it trained)."""
    ck = load_checkpoint(run_dir / which)
    cfg = ck["config"]
    name = variant or cfg["variant"]
    if not same_structure(cfg["variant"], name):
        raise ValueError(f"the run trained {cfg['variant']!r}, whose structure is not {name!r}'s")
    meta = WeightsMeta(name, cfg["scale"], source=f"trained by imdsr ({cfg['name']})",
                       training=training_summary(run_dir, ck, extra))
    return save_weights(out, ck["ema"], meta)
