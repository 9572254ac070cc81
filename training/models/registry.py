"""Registry of named model variants, in the style of timm/torchvision: name -> spec -> module.

Every architecture the project serves is here: the IMDeception family (bare variant names, as
they have always been) and its NTIRE 2022 efficient-SR peers (names that start with their
architecture). Torch-free, so the command line can list variants without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from imdsr.contract import model_name
from imdsr.imaging.tiling import TilingRule

if TYPE_CHECKING:
    from torch import nn

# Architecture -> the class that builds it ("module:Class"), imported only when a model is built.
ARCHS: dict[str, str] = {
    "imdeception": "training.models.imdeception:IMDeception",
    "imdn": "training.models.imdn:IMDN",
    "rlfn": "training.models.rlfn:RLFN",
    "efdn": "training.models.efdn:EFDN",
}


# How each architecture's tiles must sit, measured with the published checkpoints on photos
# (`imdsr bench zoo`, docs/MODEL_ZOO.md "Tiling seams"): IMDN is local, and 16 px of context leave
# every pixel within one 8-bit level of whole-image inference. RLFN's and EFDN's attention
# resamples pooled features to the window's size, so no context makes their tiles exact: they
# run whole up to 1024 px a side (exact), and beyond that with tiles aligned to their pooling
# strides (RLFN: stride-2 conv x pool stride 3; EFDN: pool stride 7). EFDN's seams are small at
# 21 px (a few pixels in 10,000 off by more than a level); RLFN's stay at 1-2% of pixels for any
# context tried (12-60 px), so it takes 30 px: a full window (252 + 2 x 30 = 312) still fits the
# 320-px engines. Their pooling also needs a smallest window (RLFN 15 px, EFDN 5 px); smaller
# images are edge-padded.
TILING: dict[str, TilingRule] = {
    "imdeception": TilingRule(context=32, align=32),
    "imdn": TilingRule(context=16, align=1),
    "rlfn": TilingRule(context=30, align=6, min_side=15, whole_up_to=1024),
    "efdn": TilingRule(context=21, align=7, min_side=5, whole_up_to=1024),
}


@dataclass(frozen=True)
class VariantSpec:
    name: str
    arch: str
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)  # the class's constructor arguments
    # Parameters the paper (or the challenge's table) reports for this structure, where it does;
    # `imdsr model summary` prints the count of the structure built here beside it.
    paper_params: int | None = None
    # The NTIRE 2022 ESR repository's checkpoint with this structure (model_zoo/<file>), if any.
    ntire22_checkpoint: str | None = None
    # The structure built here, by NTIRE 2022's counting at a 256x256 LR input (training.summary;
    # a unit test holds these to the measurement). Static, so the exporter runs without torch.
    params: int = 0
    flops: int = 0

    @property
    def triton_name(self) -> str:
        return model_name(self.name, self.arch)

    @property
    def tiling(self) -> TilingRule:
        return TILING[self.arch]


def _imdeception(name: str, core: int, nla: bool, description: str, paper: int | None = None,
                 checkpoint: str | None = None, *, params: int, flops: int) -> VariantSpec:
    return VariantSpec(name, "imdeception", description, {"core": core, "nla": nla}, paper,
                       checkpoint, params=params, flops=flops)


VARIANTS: dict[str, VariantSpec] = {
    spec.name: spec
    for spec in (
        _imdeception("c16nla", 16, True, "core 16 + two NLA blocks: the NTIRE 2022 entry", 316_552,
                     "team19_imdeception.pth", params=316_552, flops=20_705_181_696),
        _imdeception("c12", 12, False, "core 12, no attention", 198_000,
                     params=181_452, flops=11_868_831_744),
        _imdeception("c8", 8, False, "core 8, no attention", 113_000,
                     params=86_056, flops=5_623_513_088),
        _imdeception("c4nla", 4, True, "core 4 + two NLA blocks", 57_000,
                     params=25_918, flops=1_686_110_208),
        _imdeception("c4", 4, False, "core 4, no attention: the smallest",
                     params=25_588, flops=1_667_235_840),
        VariantSpec("imdn", "imdn", "IMDN, 64 channels, 8 blocks: the NTIRE 2022 ESR baseline",
                    {"channels": 64, "blocks": 8}, 893_936, "imdn_baseline.pth",
                    params=893_936, flops=58_531_512_320),
        VariantSpec("imdn_nb7", "imdn", "IMDN, 7 blocks: xilinxSR's entry (team 26, collapsed "
                    "linear blocks)", {"channels": 64, "blocks": 7}, 790_496, "team26_imdn_nb7.pth",
                    params=790_496, flops=51_757_711_360),
        VariantSpec("rlfn", "rlfn", "RLFN cut, 46/48 channels: ByteESR (team 04), runtime winner",
                    {"channels": 46, "inner": 48}, 317_218, "team04_rlfn.pth",
                    params=317_218, flops=19_695_306_752),
        VariantSpec("efdn", "efdn", "EFDN, 42 channels, re-parameterised: NEESR (team 05)",
                    {"channels": 42, "distilled": 10}, 272_038, "team05_efdn.pt",
                    params=272_038, flops=16_859_552_000),
    )
}


def list_variants(arch: str | None = None) -> list[str]:
    return [name for name, spec in VARIANTS.items() if arch is None or spec.arch == arch]


def get_variant(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def create_model(name: str, scale: int = 4) -> nn.Module:
    spec = get_variant(name)
    module, cls = ARCHS[spec.arch].split(":")
    return getattr(import_module(module), cls)(**spec.options, scale=scale)  # torch, only here


def triton_name(variant: str) -> str:
    """The Triton model that serves ``variant`` (``imdeception_c16nla``, ``rlfn``, ...)."""
    return get_variant(variant).triton_name
