"""The server images' `native-repo` stage installs the base dependencies only (Dockerfile): the
command must run with torch and every extra unimportable, and write what it writes with them."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

# Extras the Dockerfile's native-repo stage does not install.
BLOCKED = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "tritonclient", "fastapi")

_RUN = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # import raises ModuleNotFoundError, as in a venv without it
from imdsr.cli import app
app(["export", "native-repo", {src!r}, "-o", {out!r}, "--runtime", {runtime!r}])
"""


def _native_repo(out: Path, runtime: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = _RUN.format(blocked=blocked, src=str(ROOT / "model_repository"), out=str(out),
                       runtime=runtime)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_native_repo_runs_without_torch_and_writes_the_same(tmp_path):
    for runtime in ("openvino", "onnxruntime"):
        bare = _native_repo(tmp_path / f"bare-{runtime}", runtime, BLOCKED)
        assert bare.returncode == 0, bare.stderr[-2000:]
        full = _native_repo(tmp_path / f"full-{runtime}", runtime, ())
        assert full.returncode == 0, full.stderr[-2000:]
        assert _same_tree(tmp_path / f"bare-{runtime}", tmp_path / f"full-{runtime}")
