"""Write (and check) a Triton model repository: one model per variant, named as the registry says
(``imdeception_<variant>`` for IMDeception, ``rlfn``, ``efdn``, ``imdn``, ``imdn_nb7`` for its peers).

Layout, whatever the target::

    <repo>/MANIFEST.json                     what was generated from what (hashes, no timestamps)
    <repo>/<model>/config.pbtxt              rendered from export/serving.toml
    <repo>/<model>/1/model.onnx              the exported graph (cpu: served; gpu/jetson: engine source)
    <repo>/<model>/1/model.py                cpu: Python backend running OpenVINO or ONNX Runtime
                                             (gpu/jetson with runtime "torch-cuda": PyTorch on the GPU)
    <repo>/<model>/1/model.torchscript.pt    runtime "torch-cuda" only: what PyTorch loads
    <repo>/<model>/1/model.smXY.trtA.B.plan  gpu/jetson: engines, built on the node

Generation is deterministic, so regenerating an up-to-date repository changes no byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from export import onnx_export
from export.model_config import ONNX_FILENAME, TORCHSCRIPT_FILENAME, render_model_config
from export.serving import ServingConfig, Target, TrtTarget
from export.trt_plan import cc_model_filenames, parse_plan_filename
from imdsr.digest import file_sha256
from training.models.registry import triton_name
from training.weights.store import shipped_variants, shipped_weights
from triton_host.python_backend import BACKEND_FILES

MANIFEST = "MANIFEST.json"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelSource:
    variant: str
    weights: Path


def exporter_fingerprint() -> str:
    """Hash of the code that decides the ONNX bytes; a change makes committed graphs stale."""
    return hashlib.sha256(Path(onnx_export.__file__).read_bytes()).hexdigest()


def _display_path(path: Path) -> str:
    path = path.resolve()
    return path.relative_to(PROJECT_ROOT).as_posix() if path.is_relative_to(PROJECT_ROOT) else str(path)


def _found_plans(plans_dir: Path | None, model: str) -> dict[str, Path]:
    """Plans already built for ``model`` under ``plans_dir/<model>/`` (any depth), by compute capability."""
    if plans_dir is None or not (plans_dir / model).is_dir():
        return {}
    found = {}
    for plan in sorted((plans_dir / model).rglob("*.plan")):
        parsed = parse_plan_filename(plan.name)
        if parsed:
            found[parsed[0]] = plan
    return found


def _write_model(root: Path, src: ModelSource, target: Target, cfg: ServingConfig,
                 plans_dir: Path | None) -> dict:
    name = triton_name(src.variant)
    version_dir = root / name / "1"
    version_dir.mkdir(parents=True)
    result = onnx_export.export_onnx(src.variant, src.weights, version_dir / ONNX_FILENAME)
    files: dict[str, Path] = {ONNX_FILENAME: result.path}
    plans = None
    t = cfg.target(target)
    torch_gpu = isinstance(t, TrtTarget) and t.runtime == "torch-cuda"
    if target == "cpu" or torch_gpu:
        for source in BACKEND_FILES:
            shutil.copyfile(source, version_dir / source.name)
            files[source.name] = version_dir / source.name
    if torch_gpu:
        from export.torch_export import export_torchscript

        files[TORCHSCRIPT_FILENAME] = export_torchscript(src.variant, src.weights,
                                                         version_dir / TORCHSCRIPT_FILENAME)
    elif target != "cpu":
        assert isinstance(t, TrtTarget)
        plans = cc_model_filenames(t.compute_capabilities, t.tensorrt_version)
        for cc, plan in _found_plans(plans_dir, name).items():
            shutil.copyfile(plan, version_dir / plan.name)
            plans[cc] = plan.name
            files[plan.name] = version_dir / plan.name
    (root / name / "config.pbtxt").write_text(render_model_config(
        src.variant, target, cfg, plans=plans, weights_sha256=result.provenance.weights_sha256))
    return {
        "variant": src.variant,
        "weights": _display_path(src.weights),
        "weights_sha256": result.provenance.weights_sha256,
        "weights_source": result.provenance.weights_source,
        "files": {f"1/{k}": file_sha256(p) for k, p in sorted(files.items())}
        | {"config.pbtxt": file_sha256(root / name / "config.pbtxt")},
    }


def _replace_dir(new: Path, out: Path) -> None:
    if out.exists():
        entries = list(out.iterdir())
        if entries and not (out / MANIFEST).exists():
            raise FileExistsError(f"{out} is not empty and was not generated (no {MANIFEST}): "
                                  "not replacing it")
        shutil.rmtree(out)
    new.rename(out)


def write_repository(out: str | Path, target: Target, sources: list[ModelSource],
                     cfg: ServingConfig, plans_dir: Path | None = None) -> dict:
    """Generate the repository into a sibling temp folder, then swap it in whole.

    A failed export never leaves a half-written repository behind.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        manifest = {
            "generated_by": f"imdsr export repo --target {target}",
            "target": target,
            "onnx_exporter_sha256": exporter_fingerprint(),
            "models": {triton_name(s.variant): _write_model(tmp, s, target, cfg, plans_dir) for s in sources},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def check_repository(repo: str | Path, cfg: ServingConfig,
                     sources: list[ModelSource] | None = None) -> list[str]:
    """Why a ``cpu`` repository is stale w.r.t. its weights (default: the shipped ones) or the
    generator. Empty list: up to date. Agreement with PyTorch is checked by the tests, not here.
    """
    if sources is None:
        sources = [ModelSource(v, shipped_weights(v)) for v in shipped_variants()]
    repo = Path(repo)
    problems: list[str] = []
    manifest_path = repo / MANIFEST
    if not manifest_path.exists():
        return [f"{manifest_path} missing: run `make repo`"]
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("target") != "cpu":
        problems.append(f"target is {manifest.get('target')!r}, the committed repository is 'cpu'")
    if manifest.get("onnx_exporter_sha256") != exporter_fingerprint():
        problems.append("export/onnx_export.py changed since the graphs were exported")
    expected = {triton_name(s.variant): s for s in sources}
    models = manifest.get("models", {})
    on_disk = {p.name for p in repo.iterdir() if p.is_dir()}
    for name in sorted(set(expected) - set(models)):
        problems.append(f"{name}: has weights but is not in the repository")
    for name in sorted((set(models) | on_disk) - set(expected)):
        problems.append(f"{name}: in the repository but has no weights")
    for name in sorted(set(expected) & set(models)):
        problems += _check_model(repo / name, expected[name], models[name], cfg)
    return problems


def _check_model(model_dir: Path, src: ModelSource, entry: dict, cfg: ServingConfig) -> list[str]:
    name, variant, weights = model_dir.name, src.variant, src.weights
    problems = []
    if entry.get("weights_sha256") != file_sha256(weights):
        problems.append(f"{name}: exported from other weights than {_display_path(weights)}")
    for rel, digest in entry.get("files", {}).items():
        path = model_dir / rel
        if not path.exists() or file_sha256(path) != digest:
            problems.append(f"{name}/{rel}: missing or changed since generation")
    onnx_path = model_dir / "1" / ONNX_FILENAME
    if onnx_path.exists():
        prov = onnx_export.read_provenance(onnx_path)
        if prov.get("weights_sha256") != file_sha256(weights) or prov.get("variant") != variant:
            problems.append(f"{name}/1/{ONNX_FILENAME}: metadata names other weights or variant")
    config = model_dir / "config.pbtxt"
    rendered = render_model_config(variant, "cpu", cfg, weights_sha256=file_sha256(weights))
    if not config.exists() or config.read_text() != rendered:
        problems.append(f"{name}/config.pbtxt differs from what export/serving.toml renders")
    for source in BACKEND_FILES:
        copy = model_dir / "1" / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            problems.append(f"{name}/1/{source.name} differs from triton_host/python_backend/{source.name}")
    return problems
