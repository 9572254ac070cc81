"""The training loop: phases, knee LR, EMA, validation, checkpoints/resume, CSV and plots."""

from __future__ import annotations

import contextlib
import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.data.crops import CropSampler, detail
from training.data.degrade import named_pairs
from training.data.loader import step_batches
from training.data.pairs import Pair, load_pairs
from training.data.photos import find_hr_images
from training.data.standard import benchmark_leaks
from training.evaluate import Row, evaluate_pair, mean_row
from training.models.registry import create_model
from training.train import distributed
from training.train.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from training.train.config import PhaseConfig, TrainConfig, config_diff, to_dict
from training.train.ema import EMA
from training.train.init import apply_start
from training.train.losses import make_loss
from training.train.schedule import knee_lr

CSV_FIELDS = ["step", "phase", "lr", "loss", "val_y_psnr", "val_y_ssim", "val_rgb_psnr",
              "val_bicubic_y_psnr", "wall_s"]


@dataclass
class State:
    step: int = 0           # global optimiser steps done
    phase: int = 1
    best_psnr: float = float("-inf")
    best_step: int = -1
    wall_s: float = 0.0     # training time accumulated over all pieces of the run
    init_note: str = ""


def phases(cfg: TrainConfig) -> list[PhaseConfig]:
    return [cfg.phase1] + ([cfg.phase2] if cfg.phase2 else [])


def phase_at(cfg: TrainConfig, step: int) -> tuple[int, int]:
    """(phase number, step within it) for a global step."""
    start = 0
    for i, ph in enumerate(phases(cfg), 1):
        if step < start + ph.steps:
            return i, step - start
        start += ph.steps
    return len(phases(cfg)), phases(cfg)[-1].steps


def total_steps(cfg: TrainConfig) -> int:
    return sum(ph.steps for ph in phases(cfg))


def val_pairs(pairs: list[Pair], crop: int, scale: int, limit: int, min_detail: float = 0.0
              ) -> list[Pair]:
    """Centre crops of the validation images (HR side ``crop``, 0: whole), small enough for CPU.

    Crops whose LR ``detail`` is under ``min_detail`` are left out: a flat crop scores ~53 dB, so
    a one-level change there moves the mean PSNR more than real gains on every other crop (seen
    in cpu_c16nla_291: a sky crop fell 53.1 -> 49.0 dB while the other seven rose 0.2-0.9 dB).
    """
    if crop <= 0:
        out = [Pair(p.name, np.asarray(p.hr), np.asarray(p.lr)) for p in pairs]
    else:
        out = []
        lc = crop // scale
        for p in pairs:
            h, w = p.lr.shape[:2]
            y, x = max((h - lc) // 2, 0), max((w - lc) // 2, 0)
            lr = np.asarray(p.lr[y : y + lc, x : x + lc])
            hr = np.asarray(p.hr[y * scale : (y + lc) * scale, x * scale : (x + lc) * scale])
            out.append(Pair(p.name, hr, lr))
    return [p for p in out if min_detail <= 0 or detail(p.lr) >= min_detail][:limit]


def validate(model: nn.Module, pairs: list[Pair], scale: int, device: torch.device) -> Row:
    model.eval()
    rows = [evaluate_pair(model, p.name, p.hr, p.lr, scale, device) for p in pairs]
    return mean_row(rows)


CONFIG = "config.json"  # the config the run follows, beside its checkpoints


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False, max_minutes: float = 0.0) -> None:
        self.cfg, self.resume, self.max_minutes = cfg, resume, max_minutes
        self.rt = distributed.setup(cfg.threads)
        self.run_dir = cfg.run_dir
        torch.manual_seed(cfg.seed)
        cache, side = Path(cfg.data.cache), cfg.data.max_side
        workers = cfg.data.workers
        sets = cfg.data.training_sets()
        splits = [find_hr_images(Path(st.root), st.holdout) for st in sets]
        valid_files = [f for _, held in splits for f in held]
        if leaks := benchmark_leaks([f for train, _ in splits for f in train] + valid_files):
            raise ValueError(f"{len(leaks)} training/validation images are benchmark images "
                             f"(first: {leaks[0]}): the benchmarks stay out of training")
        self.pairs, self.groups = [], []
        for k, (st, (train_files, _)) in enumerate(zip(sets, splits, strict=True)):
            scales = tuple(st.hr_scales if st.hr_scales is not None else cfg.data.hr_scales)
            pairs = load_pairs(train_files, cfg.scale, cache, side, scales, workers)
            self.pairs += pairs
            self.groups += [k] * len(pairs)
        vp = load_pairs(valid_files, cfg.scale, cache, side, workers=workers)
        self.val = named_pairs(val_pairs(vp, cfg.data.val_crop, cfg.scale, cfg.data.val_images,
                                         cfg.data.val_min_detail), cfg.degrade.val)
        # Each set's share of the draws; None: every image by area.
        self.shares = [st.weight for st in sets] if any(st.weight > 0 for st in sets) else None
        self.sampler = self._sampler(cfg.seed)
        if self.sampler.dropped and self.rt.is_main:
            print(f"{len(self.sampler.dropped)} training images smaller than the "
                  f"{cfg.data.lr_crop} px LR crop left out", file=sys.stderr)
        self.model = create_model(cfg.variant, cfg.scale)
        self.state = State()
        self.loss_name = ""

    # -- setup ------------------------------------------------------------------------------
    def _sampler(self, seed: int) -> CropSampler:
        d = self.cfg.data
        return CropSampler(self.pairs, d.lr_crop, self.cfg.scale, d.batch, seed,
                           min_detail=d.min_detail, groups=self.groups, shares=self.shares,
                           degrade=self.cfg.degrade)

    def _to_device(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = lr.to(self.rt.device, non_blocking=True)
        y = hr.to(self.rt.device, non_blocking=True)
        if self.rt.cuda and self.cfg.channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(
                memory_format=torch.channels_last)
        return x, y

    def _fresh_start(self) -> None:
        cfg = self.cfg
        # Fitting batches come from a different seed stream than training batches.
        fit_sampler = self._sampler(cfg.seed + 7919)

        def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            lr, hr = fit_sampler.batch_at(i)
            return torch.from_numpy(lr), torch.from_numpy(hr)

        self.state.init_note = apply_start(self.model, cfg.init, cfg.variant, batches, cfg.init_fit_steps)

    def _make_optimizer(self, phase: PhaseConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=phase.peak_lr,
                                betas=(self.cfg.beta1, self.cfg.beta2),
                                weight_decay=self.cfg.weight_decay)

    # -- checkpoints ------------------------------------------------------------------------
    def _ckpt(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(), "state": vars(self.state).copy(),
                "config": to_dict(self.cfg), "torch_rng": torch.get_rng_state()}

    def _save(self, name: str) -> None:
        if self.rt.is_main:
            save_checkpoint(self.run_dir / name, self._ckpt())

    def _restore(self, ck: dict[str, Any]) -> None:
        self.model.load_state_dict(ck["model"])
        self.ema.load_state_dict(ck["ema"])
        self.opt.load_state_dict(ck["optimizer"])
        self.state = State(**ck["state"])
        torch.set_rng_state(ck["torch_rng"])

    def _start_phase2(self) -> None:
        """Paper: phase 2 (L2) starts from phase 1's best checkpoint, with a fresh optimiser."""
        best = self.run_dir / BEST
        if best.exists():
            ck = load_checkpoint(best)
            self.model.load_state_dict(ck["model"])
            self.ema.load_state_dict(ck["ema"])
        self.opt = self._make_optimizer(self.cfg.phase2)
        # Best-tracking restarts: phase 2's best is judged among phase 2's checkpoints.
        self.state.best_psnr, self.state.best_step = float("-inf"), -1

    # -- logging ----------------------------------------------------------------------------
    def _csv_rows(self) -> list[dict[str, str]]:
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return []
        with path.open() as f:
            return list(csv.DictReader(f))

    def _truncate_csv(self, step: int) -> None:
        """On resume, drop rows logged after the checkpoint so the CSV matches the state."""
        rows = [r for r in self._csv_rows() if int(r["step"]) <= step]
        self._write_csv(rows)

    def _write_csv(self, rows: list[dict[str, Any]]) -> None:
        path = self.run_dir / "metrics.csv"
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def _log(self, row: dict[str, Any]) -> None:
        if not self.rt.is_main:
            return
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new:
                w.writeheader()
            w.writerow({k: row.get(k, "") for k in CSV_FIELDS})

    # -- the loop ---------------------------------------------------------------------------
    def _validate_and_track(self, loss: float, lr: float) -> None:
        row = validate(self.ema.model, self.val, self.cfg.scale, self.rt.device) if self.val else None
        self.model.train()
        rec = {"step": self.state.step, "phase": self.state.phase, "lr": f"{lr:.3e}",
               "loss": f"{loss:.6f}", "wall_s": f"{self.state.wall_s:.1f}"}
        if row is not None:
            rec.update(val_y_psnr=f"{row.model.y_psnr:.4f}", val_y_ssim=f"{row.model.y_ssim:.5f}",
                       val_rgb_psnr=f"{row.model.rgb_psnr:.4f}",
                       val_bicubic_y_psnr=f"{row.bicubic.y_psnr:.4f}")
            if row.model.y_psnr > self.state.best_psnr:
                self.state.best_psnr, self.state.best_step = row.model.y_psnr, self.state.step
                self._save(BEST)
        self._log(rec)

    def _note_config_change(self) -> None:
        """Resuming under an edited config (say, a longer schedule) is allowed but never silent:
        the changes are printed and appended to ``config_changes.log``, and ``config.json``
        becomes the config the run now follows."""
        saved = self.run_dir / CONFIG
        if not saved.exists() or not self.rt.is_main:
            return
        changes = config_diff(json.loads(saved.read_text()), to_dict(self.cfg))
        if not changes:
            return
        lines = [f"resumed at step {self.state.step} with a changed config:", *changes]
        print("\n  ".join(lines), file=sys.stderr)
        with (self.run_dir / "config_changes.log").open("a") as f:
            f.write("\n  ".join(lines) + "\n")
        self._save_config()

    def _save_config(self) -> None:
        (self.run_dir / CONFIG).write_text(json.dumps(to_dict(self.cfg), indent=1))

    def run(self) -> State:
        cfg, rt = self.cfg, self.rt
        self.run_dir.mkdir(parents=True, exist_ok=True)
        last = self.run_dir / LAST
        self.ema = EMA(self.model, cfg.ema_decay)
        self.opt = self._make_optimizer(cfg.phase1)
        if self.resume and last.exists():
            self.ema = EMA(self.model, cfg.ema_decay)
            self._restore(load_checkpoint(last))
            self._truncate_csv(self.state.step)
            self._note_config_change()
        else:
            if self.run_dir.joinpath("metrics.csv").exists() and rt.is_main:
                self.run_dir.joinpath("metrics.csv").unlink()
            self._fresh_start()
            self.ema = EMA(self.model, cfg.ema_decay)
            self.opt = self._make_optimizer(cfg.phase1)
            if rt.is_main:
                self._save_config()
        self.model.to(rt.device)
        self.ema.model.to(rt.device)
        if rt.cuda and cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        net: nn.Module = self.model
        if rt.world > 1:
            net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[rt.device.index] if rt.cuda else None)
        if rt.cuda:
            amp = (torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp
                   else contextlib.nullcontext())
        else:
            amp = (torch.autocast("cpu", dtype=torch.bfloat16) if cfg.cpu_bf16
                   else contextlib.nullcontext())
        if rt.cuda:
            torch.backends.cudnn.benchmark = True  # crops have one shape: pick the fastest kernels
        total = total_steps(cfg)
        batches = step_batches(self.sampler, self.state.step, total, rt.rank, cfg.data.workers,
                               pin_memory=rt.cuda)
        bar = tqdm(total=total, initial=self.state.step, disable=not rt.is_main,
                   desc=cfg.name, dynamic_ncols=True)
        piece_start = time.monotonic()
        wall_at_start = self.state.wall_s
        # Summed on the device: reading the loss every step would make the GPU wait for the host.
        loss_acc, n_acc = torch.zeros((), device=rt.device), 0
        self.model.train()
        while self.state.step < total:
            phase_no, k = phase_at(cfg, self.state.step)
            if phase_no != self.state.phase:
                self.state.phase = phase_no
                self._start_phase2()
            phase = phases(cfg)[phase_no - 1]
            loss_fn = make_loss(phase.loss, cfg.charbonnier_eps)
            lr = knee_lr(k, phase)
            for g in self.opt.param_groups:
                g["lr"] = lr
            x, y = self._to_device(*next(batches))
            with amp:
                pred = net(x)
            loss = loss_fn(pred.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.opt.step()
            self.ema.update(self.model, self.state.step)
            self.state.step += 1
            self.state.wall_s = wall_at_start + time.monotonic() - piece_start
            loss_acc += loss.detach()
            n_acc += 1
            bar.update(1)
            done = self.state.step == total or (
                self.max_minutes > 0 and time.monotonic() - piece_start > 60 * self.max_minutes)
            log_now = self.state.step % cfg.log_every == 0 or done
            val_now = self.state.step % cfg.val_every == 0 or done
            mean_loss = float(loss_acc) / max(n_acc, 1) if log_now or val_now else 0.0
            if log_now:
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}",
                                best=f"{self.state.best_psnr:.2f}")
                if self.state.step % cfg.val_every and not done:
                    self._log({"step": self.state.step, "phase": phase_no, "lr": f"{lr:.3e}",
                               "loss": f"{mean_loss:.6f}",
                               "wall_s": f"{self.state.wall_s:.1f}"})
            if val_now:
                if rt.is_main:
                    self._validate_and_track(mean_loss, lr)
                distributed.barrier(rt)
            if self.state.step % cfg.log_every == 0:
                loss_acc, n_acc = torch.zeros((), device=rt.device), 0
            if self.state.step % cfg.ckpt_every == 0 or done:
                self._save(LAST)
                if rt.is_main:
                    self._plot()
            if done:
                break
        bar.close()
        distributed.teardown(rt)
        return self.state

    def _plot(self) -> None:
        from training.train.plots import plot_run

        with contextlib.suppress(Exception):  # a plot must never kill a training run
            plot_run(self.run_dir / "metrics.csv", self.run_dir / "curves.png", self.cfg.name)
