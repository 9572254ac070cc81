"""Where ``tritonserver`` is and what it needs around it: the binary, its libraries, the Python
backend, and the environment a child process gets.

``tritonserver`` comes from PATH (NGC containers, Jetson releases) or, when absent, from the
``nvidia-pytriton`` wheel, which ships the binary and the Python backend with one stub per Python
version. Stdlib only: ``imdsr triton`` and ``imdsr serve`` never import torch.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from triton_host.errors import TritonLaunchError

# Read by triton_host/python_backend/model.py inside the backend's stub interpreter, which ignores
# PYTHONPATH: the site-packages to put first, and the Python version they were built for.
SITE_PACKAGES_ENV = "IMDSR_TRITON_SITE_PACKAGES"
PYTHON_VERSION_ENV = "IMDSR_TRITON_PYTHON"
PY_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    source: Literal["path", "pytriton"]
    lib_dirs: tuple[Path, ...] = ()
    # pytriton only: the Python backend's files and the stub for this interpreter's version.
    python_backend: Path | None = None
    python_stub: Path | None = None
    cache_dir: Path | None = None


def _pytriton_install() -> TritonInstall | None:
    spec = importlib.util.find_spec("pytriton")  # locates without importing pytriton itself
    if spec is None or spec.origin is None:
        return None
    pkg = Path(spec.origin).resolve().parent
    root = pkg / "tritonserver"
    binary = root / "bin" / "tritonserver"
    if not binary.exists():
        return None
    stubs = root / "python_backend_stubs"
    stub = stubs / PY_VERSION / "triton_python_backend_stub"
    if not stub.exists():
        have = sorted(p.name for p in stubs.iterdir()) if stubs.is_dir() else []
        raise TritonLaunchError(
            f"nvidia-pytriton has no Python-backend stub for Python {PY_VERSION} (has {have})")
    # Wheel installs keep the bundled shared libraries beside the package (auditwheel layout).
    libs = tuple(p for p in (pkg.parent / "nvidia_pytriton.libs", root / "external_libs") if p.is_dir())
    return TritonInstall(binary, "pytriton", libs, root / "backends" / "python", stub, root / "caches")


def find_tritonserver() -> TritonInstall:
    """``tritonserver`` on PATH first (a container's own build), else the pytriton wheel's."""
    on_path = shutil.which("tritonserver")
    if on_path:
        return TritonInstall(Path(on_path), "path")
    install = _pytriton_install()
    if install is None:
        raise TritonLaunchError("no tritonserver on PATH and nvidia-pytriton is not installed "
                          "(pip install -e '.[serve]')")
    return install


def link_backends(install: TritonInstall, workdir: Path) -> Path:
    """A backends/ folder under ``workdir`` whose python/ holds the wheel's library and utils plus
    the stub of our Python; returns the backends/ folder (for ``--backend-directory``).

    The wheel keeps one stub per Python version aside; the backend looks for exactly one stub
    beside its library, so link the three files into a private folder (nothing is copied).
    """
    assert install.python_backend and install.python_stub
    python = workdir / "backends" / "python"
    python.mkdir(parents=True)
    for src in install.python_backend.iterdir():
        if src.is_file():
            (python / src.name).symlink_to(src)
    (python / "triton_python_backend_stub").symlink_to(install.python_stub)
    return workdir / "backends"


def server_environment(install: TritonInstall, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` (the launcher's environment) plus what ``install``'s server and its stubs need."""
    env = dict(base)
    libs = [str(p) for p in install.lib_dirs]
    # The stub links libpython3.X dynamically; put this interpreter's own first so the stub
    # embeds the same CPython build the site-packages below were installed for.
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and sysconfig.get_config_var("LIBDIR"):
        libs.insert(0, sysconfig.get_config_var("LIBDIR"))
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    if libs:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    env[SITE_PACKAGES_ENV] = os.pathsep.join(site.getsitepackages())
    env[PYTHON_VERSION_ENV] = PY_VERSION
    return env
