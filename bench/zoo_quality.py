"""The zoo's standard benchmarks: Y-PSNR/SSIM of each checkpoint and of bicubic on Set5, Set14,
BSD100 and Urban100, kept in a cache so a re-run of ``imdsr bench zoo`` skips what it has.

The protocol is ``imdsr eval --benchmark``'s (``training/evaluate.py`` ``benchmark_table``: HR
mod-cropped to x4, LR by the MATLAB-style bicubic, PyTorch f32 on whole images, output rounded to
8 bits, BT.601 Y with a 4-px border cropped) and the sets are the manifest's (``set_files``
refuses a missing or changed image). A score depends only on the weights, the set's images and
that protocol, never on the machine's load, so it is cached per (weights, set and its images'
digest); timings are never cached. The weights are named by their content (``safetensors_sha256``),
not their file's bytes: each import of a published checkpoint writes the same tensors and metadata
in another header order, and a re-run must find the scores of the last one.

Torch is imported inside ``evaluate_zoo``; reading and writing the cache need none of it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from imdsr.contract import SCALE
from imdsr.digest import safetensors_sha256

DEFAULT_CACHE = Path("data/zoo_benchmarks.json")
# Bump when training/evaluate.py's benchmark protocol changes: older entries are then ignored.
PROTOCOL = ("x4: HR mod-cropped, LR by MATLAB-style bicubic, PyTorch f32 whole image, output "
            "rounded to 8 bits; Y (BT.601) PSNR and SSIM, 4-px border cropped")
BICUBIC = "bicubic"


@dataclass(frozen=True)
class SetScore:
    """Mean Y-PSNR (dB) / Y-SSIM of one method over one set's images."""

    y_psnr: float
    y_ssim: float
    images: int


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str          # the variant (or bicubic) it was measured as, for a reader of the file
    weights: str         # the weights file's name when measured ("" for bicubic)
    set: str
    y_psnr: float
    y_ssim: float
    images: int
    seconds: float       # how long the evaluation took (informative: the machine may be busy)
    date: str


class _CacheFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protocol: str
    entries: dict[str, _Entry]


class CacheError(ValueError):
    """A cache file that is not one this module wrote."""


class BenchmarkCache:
    """``{key: score}`` in a JSON file, written after every new score so an interrupted run
    keeps what it measured. Entries of another protocol are dropped on load."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, _Entry] = {}
        if path.is_file():
            try:
                raw = _CacheFile.model_validate_json(path.read_text())
            except ValidationError as exc:
                raise CacheError(f"{path} is not a zoo benchmark cache ({exc.error_count()} "
                                 "errors); move it away or pass another --benchmark-cache") from None
            if raw.protocol == PROTOCOL:
                self.entries = dict(raw.entries)

    @staticmethod
    def key(weights_digest: str, set_name: str, images_digest: str) -> str:
        return f"{weights_digest}:{set_name}:{images_digest}"

    def get(self, key: str) -> SetScore | None:
        e = self.entries.get(key)
        return None if e is None else SetScore(e.y_psnr, e.y_ssim, e.images)

    def put(self, key: str, score: SetScore, *, method: str, weights: str, set_name: str,
            seconds: float) -> None:
        self.entries[key] = _Entry(method=method, weights=weights, set=set_name,
                                   y_psnr=score.y_psnr, y_ssim=score.y_ssim, images=score.images,
                                   seconds=round(seconds, 1), date=time.strftime("%Y-%m-%d"))
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = _CacheFile(protocol=PROTOCOL, entries=dict(sorted(self.entries.items())))
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(body.model_dump(), indent=1) + "\n")
        os.replace(tmp, self.path)  # never a half-written cache


@dataclass(frozen=True)
class StandardSet:
    name: str
    files: tuple[Path, ...]
    digest: str          # identifies the images: a changed set invalidates its cached scores


def standard_sets(names: Iterable[str], root: Path) -> list[StandardSet]:
    """The named sets under ``root``, each verified against the committed manifest
    (``set_files`` names a missing or changed image), its digest taken over the manifest's
    entries (names and image SHA-256s)."""
    from training.data.standard import load_manifest, set_files

    manifest = load_manifest()
    out = []
    for name in names:
        files = tuple(set_files(name, root))
        text = "\n".join(f"{f.name} {f.sha256}" for f in manifest[name].files)
        out.append(StandardSet(name, files, hashlib.sha256(text.encode()).hexdigest()[:16]))
    return out


@dataclass
class ZooScores:
    scores: dict[str, dict[str, SetScore]]   # BICUBIC or variant -> set -> score
    measured: list[tuple[str, str]]          # the (variant, set) pairs not found in the cache


def evaluate_zoo(weights: dict[str, Path], sets: list[StandardSet], cache: BenchmarkCache,
                 progress: Callable[[str], None] = print) -> ZooScores:
    """Scores of bicubic and every ``weights`` entry on each set, from the cache where it holds
    the (weights, set) pair, else measured now (and cached)."""
    from training.evaluate import benchmark_table
    from training.weights.store import load_model

    out: dict[str, dict[str, SetScore]] = {BICUBIC: {}}
    measured: list[tuple[str, str]] = []

    def measure(label: str, model, ss: StandardSet) -> dict[str, SetScore]:  # noqa: ANN001
        start = time.monotonic()
        table = benchmark_table({label: model} if model is not None else {},
                                {ss.name: list(ss.files)}, SCALE, progress=False)
        got = {k: SetScore(c[ss.name].y_psnr, c[ss.name].y_ssim, len(ss.files))
               for k, c in table.items()}
        # benchmark_table scores bicubic beside every model; keep it once per set
        cache.put(BenchmarkCache.key(BICUBIC, ss.name, ss.digest), got[BICUBIC], method=BICUBIC,
                  weights="", set_name=ss.name, seconds=time.monotonic() - start)
        return got

    for variant, path in weights.items():
        digest, model = safetensors_sha256(path), None
        out[variant] = {}
        for ss in sets:
            key = BenchmarkCache.key(digest, ss.name, ss.digest)
            score = cache.get(key)
            if score is None:
                if model is None:
                    model, _ = load_model(variant, path)
                start = time.monotonic()
                score = measure(variant, model, ss)[variant]
                seconds = time.monotonic() - start
                cache.put(key, score, method=variant, weights=path.name, set_name=ss.name,
                          seconds=seconds)
                measured.append((variant, ss.name))
                progress(f"{variant} on {ss.name}: Y-PSNR {score.y_psnr:.2f} dB, SSIM "
                         f"{score.y_ssim:.4f} ({seconds:.0f} s, cached)")
            out[variant][ss.name] = score
        del model
    for ss in sets:
        key = BenchmarkCache.key(BICUBIC, ss.name, ss.digest)
        out[BICUBIC][ss.name] = cache.get(key) or measure(BICUBIC, None, ss)[BICUBIC]
    return ZooScores(out, measured)
