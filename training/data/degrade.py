"""Real-input degradations of the LR side of training crops (issue 27); numpy + PIL only.

Users upload JPEGs, not clean bicubic downscales; a network trained on clean LR only sharpens
block edges and ringing into the picture. So a training crop's LR can be made the way a camera
and an encoder make it: a slight Gaussian blur of the HR *before* the project's MATLAB-style
bicubic downscale, then Gaussian and Poisson noise, then JPEG (last: an upload's final step).
The HR target is never touched.

Each degradation draws from its own generator, derived from the sampler's seed, the step, the
rank and the sample's index in the batch (``sample_rngs``). So the degradations of a sample do
not depend on which worker makes its batch or on a resume, the crops drawn are the same as a
clean run's, and changing one degradation's probability leaves the others' draws alone.

The same JPEG, by name (``jpeg50``), is what ``imdsr eval --benchmark --degrade`` and the
validation of a degraded run apply to the LR (``apply_named``).
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from imdsr.imaging.resize import KERNEL_WIDTH, downscale
from training.data.pairs import Pair

if TYPE_CHECKING:  # the config imports this module's parser; only the type is needed here
    from training.train.config import DegradeConfig

# Entropy word separating the degradation streams from the crop stream ``[seed, step, rank]``.
DEGRADE_STREAM = 27
# Photons at white of the simulated sensor in Poisson noise: Real-ESRGAN's count for 8-bit
# images, so its ``poisson_scale_range`` values mean the same here.
POISSON_PEAK = 256.0
# BT.601 luma: grey noise is computed on, and shared by, the three channels.
LUMA = np.array([0.299, 0.587, 0.114])
CLEAN = "clean"
_NAMED = re.compile(r"jpeg(\d{1,3})")


@dataclass(frozen=True)
class SampleRngs:
    """One generator per degradation for one sample."""

    blur: np.random.Generator
    noise: np.random.Generator
    poisson: np.random.Generator
    jpeg: np.random.Generator


def sample_rngs(seed: int, step: int, rank: int, index: int) -> SampleRngs:
    seq = np.random.SeedSequence([seed, step, rank, index, DEGRADE_STREAM])
    return SampleRngs(*(np.random.default_rng(s) for s in seq.spawn(4)))


# -- the degradations -----------------------------------------------------------------------------
def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian, radius ceil(3 sigma); sigma 0 is the identity [1]."""
    if sigma <= 0:
        return np.ones(1)
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an HxWxC array as float64, symmetric borders (the padding the
    bicubic uses, so a blurred image border is treated as the downscale treats it)."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    out = np.asarray(img, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="symmetric")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(t, t + n), axis=axis) for t, w in enumerate(k))
    return out


def blurred_lr(hr: np.ndarray, origin: tuple[int, int], lr_size: int, scale: int, sigma: float
               ) -> np.ndarray:
    """The LR crop at ``origin`` (LR px) made from ``hr`` blurred by ``sigma`` (HR px) and then
    downscaled by the project's bicubic: the cached LR is ``downscale(hr)``, so this is that
    crop with the blur inserted before the downscale.

    Only a window around the crop is blurred and downscaled: one wide enough that the crop's
    pixels read no padded value, so with sigma 0 this is the cached LR's crop bit for bit
    (``tests/unit/test_degrade.py``); where the window meets the image border the symmetric
    padding is the full image's own.
    """
    # HR px each LR pixel reads: the blur's radius, then the stretched bicubic's half-width.
    reach = len(gaussian_kernel(sigma)) // 2 + math.ceil(KERNEL_WIDTH * scale / 2) + 2
    margin = math.ceil(reach / scale)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    y, x = origin
    y0, x0 = max(0, y - margin), max(0, x - margin)
    y1, x1 = min(h, y + lr_size + margin), min(w, x + lr_size + margin)
    window = gaussian_blur(hr[y0 * scale : y1 * scale, x0 * scale : x1 * scale], sigma)
    lr = downscale(window, scale)  # float in, float out: one rounding, as the cached LR had
    lr = lr[y - y0 : y - y0 + lr_size, x - x0 : x - x0 + lr_size]
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def gaussian_noise(img: np.ndarray, sigma: float, grey: bool, rng: np.random.Generator
                   ) -> np.ndarray:
    """``img`` (float, 0..255) plus N(0, sigma^2) noise, sigma in 8-bit levels; ``grey``: one
    noise value per pixel for all channels (luma noise), else one per channel."""
    shape = img.shape[:2] + ((1,) if grey else img.shape[2:])
    return img + rng.normal(0.0, sigma, shape)


def poisson_noise(img: np.ndarray, scale: float, grey: bool, rng: np.random.Generator
                  ) -> np.ndarray:
    """``img`` (float, 0..255) plus ``scale`` times the shot noise of a sensor counting
    ``POISSON_PEAK`` photons at white: the noise's s.d. at level v is
    ``scale * 255 * sqrt(v / 255 / POISSON_PEAK)``. ``grey``: computed on the luma and shared."""
    x = np.clip(img, 0, 255) / 255.0
    if grey:
        x = (x @ LUMA)[..., None]
    counts = rng.poisson(x * POISSON_PEAK)
    return img + scale * 255.0 * (counts / POISSON_PEAK - x)


def jpeg(img: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Encode and decode a uint8 HxWx3 array with PIL's JPEG at ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", quality=quality,
                                                     subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


# -- the training-time pipeline -------------------------------------------------------------------
def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


class Degrader:
    """A ``DegradeConfig`` for the crops of one sampler (``seed``): ``sample`` gives the
    degradation of one sample."""

    def __init__(self, cfg: DegradeConfig, scale: int, seed: int) -> None:
        self.cfg, self.scale, self.seed = cfg, scale, seed

    def sample(self, step: int, rank: int, index: int) -> SampleDegradation:
        return SampleDegradation(self.cfg, self.scale, sample_rngs(self.seed, step, rank, index))


@dataclass(frozen=True)
class SampleDegradation:
    """One sample's degradations, in two stages around the dihedral augmentation: ``resample``
    (the blur, which needs the HR around the crop) before it, and ``corrupt`` (noise, JPEG)
    after it, so JPEG's blocks and its asymmetric quantisation tables stay in the orientation an
    encoder gives them."""

    cfg: DegradeConfig
    scale: int
    rngs: SampleRngs

    def resample(self, hr: np.ndarray, origin: tuple[int, int], lr: np.ndarray) -> np.ndarray:
        """``lr`` (the cached crop at ``origin``), or the crop remade from a blurred ``hr``."""
        b, rng = self.cfg.blur, self.rngs.blur
        if rng.random() >= b.p:
            return lr
        return blurred_lr(hr, origin, lr.shape[0], self.scale, _uniform(rng, b.sigma))

    def corrupt(self, lr: np.ndarray) -> np.ndarray:
        """Noise (Gaussian, then Poisson), rounded to 8 bits once, then JPEG."""
        n, p, j, rngs = self.cfg.noise, self.cfg.poisson, self.cfg.jpeg, self.rngs
        out: np.ndarray | None = None
        if rngs.noise.random() < n.p:
            sigma, grey = _uniform(rngs.noise, n.sigma), bool(rngs.noise.random() < n.grey_p)
            out = gaussian_noise(lr.astype(np.float64), sigma, grey, rngs.noise)
        if rngs.poisson.random() < p.p:
            scale, grey = _uniform(rngs.poisson, p.scale), bool(rngs.poisson.random() < p.grey_p)
            out = poisson_noise(lr.astype(np.float64) if out is None else out, scale, grey,
                                rngs.poisson)
        if out is not None:
            lr = np.clip(np.round(out), 0, 255).astype(np.uint8)
        if rngs.jpeg.random() < j.p:
            quality = int(rngs.jpeg.integers(j.quality[0], j.quality[1] + 1))
            lr = jpeg(lr, quality, "4:4:4" if rngs.jpeg.random() < j.p444 else "4:2:0")
        return lr


# -- named degradations: evaluation and validation ------------------------------------------------
def check_name(name: str) -> str:
    """``clean`` or ``jpegQ`` (JPEG at quality Q in 1..100, 4:2:0, PIL); else ValueError."""
    m = _NAMED.fullmatch(name)
    if name == CLEAN or (m and 1 <= int(m.group(1)) <= 100):
        return name
    raise ValueError(f"unknown degradation {name!r}: use clean or jpegQ with Q in 1..100 "
                     "(e.g. jpeg50)")


def parse_names(text: str) -> list[str]:
    """``"jpeg50,jpeg75"`` -> ``["clean", "jpeg50", "jpeg75"]``: clean is always measured
    first, so degraded results sit beside the clean ones; repeats are dropped."""
    names = [CLEAN] + [check_name(t.strip()) for t in text.split(",") if t.strip()]
    return list(dict.fromkeys(names))


def apply_named(lr: np.ndarray, name: str) -> np.ndarray:
    """The named degradation of a uint8 LR image (``clean`` returns it as it is)."""
    if check_name(name) == CLEAN:
        return lr
    return jpeg(lr, int(name.removeprefix("jpeg")), "4:2:0")


def named_pairs(pairs: list[Pair], names: list[str]) -> list[Pair]:
    """Each pair under each named degradation of its LR (``name@jpeg50``; clean keeps its
    name), for validation on the inputs a degraded run is for."""
    return [p if name == CLEAN else Pair(f"{p.name}@{name}", p.hr, apply_named(np.asarray(p.lr), name))
            for name in names for p in pairs]
