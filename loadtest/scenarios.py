"""The load-test scenarios, defined once: photo sizes, input formats, models and their weights.

The locustfile encodes one real photo per scenario and names its requests after it; ``run.py``
reads Locust's per-name statistics back and turns requests/s into output megapixels/s. Pillow and
scikit-image are imported only to encode, so ``run.py`` stays light.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

SCALE = 4                     # the models are x4: 16 output pixels per input pixel
SHED_STATUSES = (429, 503)    # the gateway's admission control (with Retry-After): not failures
SHED_SUFFIX = " [shed]"       # request name suffix those answers are counted under


@dataclass(frozen=True)
class Size:
    name: str
    width: int
    height: int
    photo: str    # a scikit-image sample photo: skimage.data.<photo>()
    weight: int   # relative frequency of each (format, model) pair of this size


@dataclass(frozen=True)
class Scenario:
    size: Size
    fmt: str      # input (and so output) format: png | jpeg | webp
    model: str
    weight: int

    @property
    def name(self) -> str:
        """Locust's request name: statistics come per scenario."""
        return f"/upscale {self.size.name} {self.fmt} {self.model}"

    @property
    def content_type(self) -> str:
        return FORMATS[self.fmt]

    @property
    def output_size(self) -> str:
        """What the gateway's ``X-Output-Size`` header must say."""
        return f"{self.size.width * SCALE}x{self.size.height * SCALE}"

    @property
    def output_pixels(self) -> int:
        return self.size.width * self.size.height * SCALE * SCALE


SIZES = (
    Size("small", 128, 128, "astronaut", weight=12),
    Size("medium", 512, 384, "coffee", weight=6),
    Size("large", 1024, 768, "rocket", weight=2),   # 12 tiles of 256 px
)
FORMATS = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
MODELS = ("c16nla", "c4")
# c16nla on a large photo takes several seconds on a 2-core CPU: rarer still.
WEIGHT_OVERRIDES = {("large", "c16nla"): 1}

SCENARIOS = tuple(
    Scenario(size, fmt, model, WEIGHT_OVERRIDES.get((size.name, model), size.weight))
    for size in SIZES for fmt in FORMATS for model in MODELS
)


def select(spec: str = "") -> tuple[Scenario, ...]:
    """Scenarios matching ``spec``: words (sizes, formats, models) separated by commas or spaces.

    Words of one kind widen (``small,medium``), kinds narrow (``small,c4``: every small scenario
    with c4). An empty spec selects everything; an unknown word raises ValueError.
    """
    words = set(spec.replace(",", " ").split())
    kinds = {"size": {s.name for s in SIZES}, "format": set(FORMATS), "model": set(MODELS)}
    unknown = words - set().union(*kinds.values())
    if unknown:
        raise ValueError(f"unknown scenario word(s) {sorted(unknown)}; known: "
                         + ", ".join(f"{k} {sorted(v)}" for k, v in kinds.items()))
    wanted = {kind: (words & known) or known for kind, known in kinds.items()}
    return tuple(s for s in SCENARIOS if s.size.name in wanted["size"] and s.fmt in wanted["format"]
                 and s.model in wanted["model"])


@functools.cache
def _photo(size: Size):  # noqa: ANN202 - PIL.Image.Image, imported lazily
    import skimage.data
    from PIL import Image, ImageOps

    photo = Image.fromarray(getattr(skimage.data, size.photo)())
    # Crop to the scenario's aspect ratio and resize: real photo content, exact size.
    return ImageOps.fit(photo, (size.width, size.height), Image.Resampling.LANCZOS)


def encode(scenario: Scenario) -> bytes:
    """The scenario's request body: its photo, resized, encoded in its format."""
    buf = io.BytesIO()
    options = {"quality": 90} if scenario.fmt in ("jpeg", "webp") else {}
    _photo(scenario.size).save(buf, scenario.fmt.upper(), **options)
    return buf.getvalue()
