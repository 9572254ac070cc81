"""The committed CPU repository, re-targeted at Triton's own CPU backends for NVIDIA's images.

NVIDIA's Triton images ship the ``onnxruntime`` and ``openvino`` backends, which run the ONNX graph
inside the server with no Python stub in the way; the pip-installed ``tritonserver`` has the
Python backend only, which is why the committed repository uses it. This writer takes each
model's ``model.onnx`` from a generated ``cpu`` repository and renders its config for the native
backend of the configured (or given) runtime. Torch-free: it runs in the serving image's build.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from export.model_config import ONNX_FILENAME, render_model_config
from export.serving import ServingConfig
from imdsr.contract import variant_of

MANIFEST = "MANIFEST.json"


def write_native_repository(source: Path, out: Path, cfg: ServingConfig,
                            runtime: str | None = None) -> list[str]:
    """Models written (their names). ``runtime`` overrides the serving config's CPU runtime."""
    manifest = json.loads((source / MANIFEST).read_text())
    if manifest.get("target") != "cpu":
        raise ValueError(f"{source} is a {manifest.get('target')!r} repository, not a cpu one")
    if runtime is not None:
        cfg = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={"runtime": runtime})})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        names = sorted(manifest["models"])
        for name in names:
            (tmp / name / "1").mkdir(parents=True)
            shutil.copyfile(source / name / "1" / ONNX_FILENAME, tmp / name / "1" / ONNX_FILENAME)
            (tmp / name / "config.pbtxt").write_text(render_model_config(
                variant_of(name), "cpu", cfg, native=True,
                weights_sha256=manifest["models"][name].get("weights_sha256")))
        (tmp / MANIFEST).write_text(json.dumps(
            {"generated_by": "imdsr export native-repo", "source": str(source), "target": "cpu",
             "backend": cfg.cpu.runtime, "models": names}, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names
