"""The registry of the models the project serves: one entry per architecture, holding its variants.

In the style of timm's ``default_cfgs`` beside each architecture and BasicSR's ``ARCH_REGISTRY``,
but torch-free, so that the command line (and the torch-less gateway and export images) can list
variants: an entry names its class as ``"module:Class"``, imported only when a model is built.

An entry holds every fact of a model that more than one place needs: its structure (class and
constructor options), tiling rule, published figures (the paper's parameters, the challenge's
table row), checkpoint mapping, static params/FLOPs and the starting admission rate. The zoo table
(``bench/zoo.py``), ``imdsr model summary``, the checkpoint importer (``training/weights/ntire22``),
the exporter (which publishes the serving traits in each config.pbtxt, so the gateway learns them
from Triton without importing this) and the tests read them from here; tests over models are
parametrized over ``list_variants()``.

Adding an architecture: its module under ``training/models/`` and one ``Architecture`` entry in
``ENTRIES`` below, with its variants.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import import_module
from typing import TYPE_CHECKING, Any

from imdsr.contract import model_name
from imdsr.imaging.tiling import TilingRule

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ChallengeRow:
    """One row of an NTIRE efficient-SR challenge's table (DIV2K x4, 256x256 input): the 2022
    report's (Titan Xp GPU, DIV2K test), or a 2023 factsheet's (its own GPU, DIV2K+LSDIR test).
    Figures are as printed; they are compared at their printed precision (training.summary)."""

    team: str
    entry: str
    psnr_val: float
    psnr_test: float
    runtime_ms: float
    params_m: float
    flops_g: float
    acts_m: float
    convs: int
    report: str = "NTIRE 2022"
    gpu: str = "Titan Xp"


@dataclass(frozen=True)
class Variant:
    """One named structure of an architecture, as its entry writes it."""

    name: str
    description: str
    options: Mapping[str, Any]  # the class's constructor arguments (``scale`` aside)
    # The structure built here, by NTIRE 2022's counting at a 256x256 LR input (training.summary;
    # a unit test holds these to the measurement). Static, so the exporter runs without torch.
    params: int
    flops: int
    # Parameters the paper (or the challenge's table) reports for this structure, where it does;
    # `imdsr model summary` prints the count of the structure built here beside it.
    paper_params: int | None = None
    # The published checkpoint with this structure (model_zoo/<file> of the challenge's
    # repository: ofsoundof/NTIRE2022_ESR, or the team's own for 2023), if any.
    checkpoint: str | None = None
    challenge: ChallengeRow | None = None
    # Admission's starting estimate, model seconds per output megapixel on the cpu target (the
    # shipped repository: OpenVINO f32, 2 threads, 320-px windows, a 2-core CPU), until the
    # gateway has learnt the model's own (service/admission.py). The exporter publishes it in the
    # cpu config.pbtxt; None: the gateway's default_seconds_per_mpx.
    seconds_per_mpx: float | None = None
    # One line for a person choosing between the served models: the inputs this one suits and
    # what it trades. Published in config.pbtxt (imdsr_use_when), shown by GET /models and the
    # page beside the model list; the figures behind each line are in docs/MODEL_ZOO.md and
    # docs/MODEL_CARD.md.
    use_when: str = ""


@dataclass(frozen=True)
class Architecture:
    """An architecture's facts and its variants: one registry entry."""

    name: str
    builder: str  # "module:Class"; the class takes the variant's options and ``scale``
    tiling: TilingRule
    variants: tuple[Variant, ...]
    # Import of the published checkpoints (training/weights/ntire22.py): "module:function" giving
    # a model's links (our tensor <- the published ones), or None where none is published.
    checkpoint_links: str | None = None
    # The published weights' input and output range ([0, 255] for RLFN, EFDN, SRneXt); ours are [0, 1],
    # so the import folds the factor into ``head.weight`` and ``tail.weight``/``tail.bias``.
    published_range: float = 1.0
    # The published code computes each grouped conv as one conv per group, so the challenge's
    # #conv counts each of them (IMDeception: 134 there, 62 here).
    published_splits_groups: bool = False
    # Training's bicubic start (training/train/init.py) needs a ``residual_out`` conv whose zeroing
    # leaves head -> tail. SRneXt's body is a chain of residual layers plus a long skip (zeroed
    # branches give twice the head's features), so it starts from its published weights instead.
    bicubic_start: bool = True


@dataclass(frozen=True)
class VariantSpec(Variant):
    """A variant with the architecture it belongs to: what ``get_variant`` answers."""

    architecture: Architecture = field(kw_only=True, repr=False)

    @property
    def arch(self) -> str:
        return self.architecture.name

    @property
    def tiling(self) -> TilingRule:
        return self.architecture.tiling

    @property
    def triton_name(self) -> str:
        return model_name(self.name, self.arch)


def _imdeception(name: str, core: int, nla: bool, description: str, *, params: int, flops: int,
                 **published: Any) -> Variant:
    return Variant(name, description, {"core": core, "nla": nla}, params, flops, **published)


# Measured with the shipped repository on the 2-core CPU (issue 15, docs/RELIABILITY.md "Limits
# and their defaults"); the peers' rates are derived from it.
C16NLA_SECONDS_PER_MPX = 0.30


def _peer(name: str, description: str, options: Mapping[str, Any], *, params: int, flops: int,
          checkpoint: str, row: ChallengeRow, mpx_per_s: float, use_when: str) -> Variant:
    """An NTIRE 2022 peer as published: its parameters are the challenge table's. Its seconds per
    output Mpx are not measured through admission but derived from c16nla's by the served
    graphs' OpenVINO speed at 256x256 in one run (docs/MODEL_ZOO.md: c16nla 3.35 Mpx/s, this
    model ``mpx_per_s``): a starting figure, the gateway learns each model's own."""
    return Variant(name, description, options, params, flops, paper_params=params,
                   checkpoint=checkpoint, challenge=row, use_when=use_when,
                   seconds_per_mpx=round(C16NLA_SECONDS_PER_MPX * 3.35 / mpx_per_s, 2))


def _rfdn_family(name: str, builder: str, tiling: TilingRule, variant: Variant) -> Architecture:
    """RLFN and EFDN were published in the RFDN code base: one structure each, weights for
    [0, 255], RFDN's checkpoint layout around their blocks (training/weights/ntire22_peers.py)."""
    return Architecture(name, builder, tiling, (variant,),
                        checkpoint_links=f"training.weights.ntire22_peers:{name}_links",
                        published_range=255.0)


# How each architecture's tiles must sit, measured with the published checkpoints on photos
# (`imdsr bench zoo`, docs/MODEL_ZOO.md "Tiling seams"), is the comment above its rule.
ENTRIES: tuple[Architecture, ...] = (
    Architecture(
        "imdeception", "training.models.imdeception:IMDeception",
        # Block attention on a fixed 32-px grid: windows aligned to 32 with 32 px of context
        # reproduce whole-image inference to float rounding (docs/PERFORMANCE.md, "Tiling").
        TilingRule(context=32, align=32),
        checkpoint_links="training.weights.ntire22_imdeception:links",
        published_splits_groups=True,
        # Seconds per Mpx: measured as c16nla's was. The paper's smaller cores report
        # 198K, 113K and 57K parameters with attention; scaling the core in the published
        # structure gives fewer, so the paper's small models differed in more than the core.
        variants=(
            _imdeception("c16nla", 16, True, "core 16 + two NLA blocks: the NTIRE 2022 entry",
                         params=316_552, flops=20_705_181_696, paper_params=316_552,
                         checkpoint="team19_imdeception.pth",
                         challenge=ChallengeRow("Aselsan", "IMDeception", 29.02, 28.73, 63.18,
                                                0.317, 20.71, 206.06, 134),
                         use_when="clean inputs (PNG, camera JPEGs at quality 95+, renders): the sharpest of"
                                  " the shipped models",
                         seconds_per_mpx=C16NLA_SECONDS_PER_MPX),
            # c16nla fine-tuned on degraded inputs (issue 27, training/configs/*c16nla_real*):
            # the same structure, other weights; the gateway picks it for compressed JPEGs.
            _imdeception("c16nla_real", 16, True, "c16nla fine-tuned on JPEG-compressed, noisy "
                         "and soft inputs: for compressed photos",
                         params=316_552, flops=20_705_181_696,
                         use_when="compressed, noisy or soft photos (most web JPEGs, screenshots of video): "
                                  "removes block edges and ringing instead of sharpening them; the gateway's"
                                  " choice for JPEGs below quality 95",
                         seconds_per_mpx=C16NLA_SECONDS_PER_MPX),
            _imdeception("c12", 12, False, "core 12, no attention", params=181_452,
                         flops=11_868_831_744, paper_params=198_000,
                         use_when="clean inputs when c16nla is too slow: about half its work",
                         seconds_per_mpx=0.17),
            _imdeception("c8", 8, False, "core 8, no attention", params=86_056,
                         flops=5_623_513_088, paper_params=113_000,
                         use_when="clean inputs at a third of c16nla's work",
                         seconds_per_mpx=0.11),
            _imdeception("c4nla", 4, True, "core 4 + two NLA blocks", params=25_918,
                         flops=1_686_110_208, paper_params=57_000,
                         use_when="previews and large batches: the smallest with attention",
                         seconds_per_mpx=0.065),
            _imdeception("c4", 4, False, "core 4, no attention: the smallest", params=25_588,
                         flops=1_667_235_840,
                         use_when="previews, video and large batches: about 5x faster than c16nla, softer "
                                  "detail",
                         seconds_per_mpx=0.06),
        ),
    ),
    Architecture(
        "imdn", "training.models.imdn:IMDN",
        # Local: 16 px of context leave every pixel within one 8-bit level of whole-image inference.
        TilingRule(context=16, align=1),
        checkpoint_links="training.weights.ntire22_peers:imdn_links",
        variants=(
            _peer("imdn", "IMDN, 64 channels, 8 blocks: the NTIRE 2022 ESR baseline",
                  {"channels": 64, "blocks": 8}, params=893_936, flops=58_531_512_320,
                  checkpoint="imdn_baseline.pth", mpx_per_s=2.84,
                  use_when="comparison with the challenge's baseline: nearly 3x c16nla's arithmetic for "
                           "about its quality", row=ChallengeRow(
                      "NTIRE baseline", "IMDN", 29.13, 28.78, 50.86, 0.894, 58.53, 154.14, 43)),
            _peer("imdn_nb7", "IMDN, 7 blocks: xilinxSR's entry (team 26, collapsed linear blocks)",
                  {"channels": 64, "blocks": 7}, params=790_496, flops=51_757_711_360,
                  checkpoint="team26_imdn_nb7.pth", mpx_per_s=3.16,
                  use_when="comparison with the IMDN baseline: one block fewer, the same quality",
                  row=ChallengeRow(
                      "xilinxSR", "IMDN nb7", 29.05, 28.72, 48.20, 0.790, 51.76, 136.31, 38)),
        ),
    ),
    # RLFN's attention resamples pooled features to the window's size, so no context makes
    # tiles exact: whole up to 1024 px a side (exact), beyond that tiles aligned to the pooling
    # strides (stride-2 conv x pool stride 3). Seams stay at 1-2% of pixels for any context
    # tried (12-60 px), so 30: a full window (252 + 2 x 30 = 312) still fits the 320-px engines.
    # The pooling needs 15 px; smaller images are edge-padded.
    _rfdn_family("rlfn", "training.models.rlfn:RLFN", TilingRule(30, 6, min_side=15, whole_up_to=1024),
                 _peer("rlfn", "RLFN cut, 46/48 channels: ByteESR (team 04), runtime winner",
                       {"channels": 46, "inner": 48}, params=317_218, flops=19_695_306_752,
                       checkpoint="team04_rlfn.pth", mpx_per_s=7.56,
                       use_when="clean inputs when speed matters: about 2x c16nla's speed, a little softer",
                       row=ChallengeRow(
                           "ByteESR", "RLFN", 29.00, 28.72, 27.11, 0.317, 19.70, 80.05, 39))),
    # EFDN as RLFN (pool stride 7): whole up to 1024 px; beyond, seams are small at 21 px of
    # context (a few pixels in 10,000 off by more than a level). The pooling needs 5 px.
    _rfdn_family("efdn", "training.models.efdn:EFDN", TilingRule(21, 7, min_side=5, whole_up_to=1024),
                 _peer("efdn", "EFDN, 42 channels, re-parameterised: NEESR (team 05)",
                       {"channels": 42, "distilled": 10}, params=272_038, flops=16_859_552_000,
                       checkpoint="team05_efdn.pt", mpx_per_s=7.10,
                       use_when="clean inputs when speed matters, as rlfn: smaller, a little softer",
                       row=ChallengeRow(
                           "NEESR", "EFDN", 29.01, 28.71, 29.97, 0.272, 16.86, 79.59, 59))),
    Architecture(
        "srnext", "training.models.srnext:SRneXt",
        # Local operations only but a wide receptive field (about 236 LR px). Measured with the
        # published checkpoint on the zoo's seam photo (astronaut 384x512, 128-px cores):
        # context 0 / 4 / 8 / 12 px leave pixels up to 87 / 20 / 15 / 5 levels off whole-image
        # inference; 16 px and more (16-128 tried) keep every pixel within one 8-bit level, at
        # 1.39x the pixels computed for 128-px cores (about 1.13x for the gateway's 256-px ones).
        TilingRule(context=16, align=1),
        checkpoint_links="training.weights.ntire23_srnext:links",
        published_range=255.0,
        bicubic_start=False,
        variants=(
            Variant("srnext", "SRneXt, 26 layers of 35 channels: FRL Team 05's NTIRE 2023 entry",
                    {"channels": 35, "layers": 26, "kernel": 15}, params=244_558,
                    flops=15_375_925_248, paper_params=244_558, checkpoint="team05_exnet.pth",
                    use_when="clean inputs, for comparison with the 2023 challenge: the fewest "
                             "parameters of the zoo, slower on CPUs than its FLOPs suggest",
                    # The factsheet's figures (NTIRE 2023 ESR, RTX 3090, DIV2K+LSDIR test).
                    challenge=ChallengeRow("FRL Team 05", "SRneXt", 29.02, 27.02, 91.16, 0.2445,
                                           15.376, 422.9, 158, report="NTIRE 2023",
                                           gpu="RTX 3090"),
                    # Derived as the NTIRE 2022 peers' are, from c16nla's by the served graphs'
                    # OpenVINO f32 time at 256x256 in one run (docs/MODEL_ZOO.md of 2026-12-04:
                    # c16nla 363 ms, srnext 766 ms); the gateway learns its own.
                    seconds_per_mpx=round(C16NLA_SECONDS_PER_MPX * 766 / 363, 2)),
        ),
    ),
)


def _index(entries: tuple[Architecture, ...]) -> dict[str, VariantSpec]:
    """Every variant by name, bound to its architecture; a clash or a name Triton cannot take
    fails at import, not at export."""
    out: dict[str, VariantSpec] = {}
    for arch in entries:
        for v in arch.variants:
            if v.name in out:
                raise ValueError(f"variant {v.name!r} registered twice")
            model_name(v.name, arch.name)  # raises for a name that does not fit its architecture
            out[v.name] = VariantSpec(**{f.name: getattr(v, f.name) for f in fields(Variant)},
                                      architecture=arch)
    return out


ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in ENTRIES}
VARIANTS: dict[str, VariantSpec] = _index(ENTRIES)


def list_variants(arch: str | None = None) -> list[str]:
    return [name for name, spec in VARIANTS.items() if arch is None or spec.arch == arch]


def get_variant(name: str) -> VariantSpec:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def resolve(path: str) -> Callable[..., Any]:
    """The object a ``"module:name"`` reference names (imports its module: torch, for models)."""
    module, name = path.split(":")
    return getattr(import_module(module), name)


def create_model(name: str, scale: int = 4) -> nn.Module:
    spec = get_variant(name)
    return resolve(spec.architecture.builder)(**spec.options, scale=scale)


def triton_name(variant: str) -> str:
    """The Triton model that serves ``variant`` (``imdeception_c16nla``, ``rlfn``, ...)."""
    return get_variant(variant).triton_name
