"""The knee schedule (paper 4.2): linear warm-up, explore at the peak, linear decay to the end."""

from __future__ import annotations

from training.train.config import PhaseConfig


def knee_lr(step: int, phase: PhaseConfig) -> float:
    """Learning rate for 0-based ``step`` of ``phase``."""
    total, peak, final = phase.steps, phase.peak_lr, phase.final_lr
    if phase.warmup > 0 and step < phase.warmup:
        return peak * (step + 1) / phase.warmup
    decay_start = phase.warmup + phase.explore
    if step < decay_start:
        return peak
    decay_len = max(total - decay_start, 1)
    frac = min((step - decay_start) / decay_len, 1.0)
    return peak + (final - peak) * frac
