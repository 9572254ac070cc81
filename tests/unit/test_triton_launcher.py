"""The launcher: which tritonserver, with what environment, and `imdsr triton` start/stop."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from triton_host.launcher import (
    PYTHON_VERSION_ENV,
    SITE_PACKAGES_ENV,
    TritonLaunchError,
    TritonOptions,
    TritonServer,
    find_tritonserver,
)

IMDSR = Path(sys.executable).parent / "imdsr"


def test_tritonserver_on_path_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "tritonserver"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    install = find_tritonserver()
    assert install.source == "path" and install.binary == fake


def test_pytriton_wheel_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    install = find_tritonserver()
    assert install.source == "pytriton"
    assert install.binary.name == "tritonserver" and os.access(install.binary, os.X_OK)
    assert install.python_stub is not None
    assert install.python_stub.parent.name == f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert install.lib_dirs


def test_command_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    server = TritonServer(TritonOptions(tmp_path, 1001, 1002, 1003, host="127.0.0.1"))
    cmd = server.command()
    try:
        for flag in ("--http-port=1001", "--grpc-port=1002", "--metrics-port=1003",
                     "--grpc-address=127.0.0.1", "--strict-readiness=true"):
            assert flag in cmd
        backends = Path(next(a for a in cmd if a.startswith("--backend-directory=")).split("=", 1)[1])
        python = backends / "python"
        assert {p.name for p in python.iterdir()} >= {
            "libtriton_python.so", "triton_python_backend_utils.py", "triton_python_backend_stub"}
        assert any("shm-region-prefix-name=imdsr" in a for a in cmd)  # unique per server
        env = server.environment()
        assert env[PYTHON_VERSION_ENV] == f"{sys.version_info[0]}.{sys.version_info[1]}"
        assert any(Path(p, "numpy").is_dir() for p in env[SITE_PACKAGES_ENV].split(os.pathsep))
        assert all(str(d) in env["LD_LIBRARY_PATH"] for d in server.install.lib_dirs)
        assert server.grpc_url == "127.0.0.1:1002" and server.metrics_url.endswith(":1003/metrics")
    finally:
        server._cleanup()
    assert not backends.exists()


def test_missing_or_empty_repository_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TritonLaunchError, match="does not exist"):
        TritonServer(TritonOptions(tmp_path / "nope")).start()
    with pytest.raises(TritonLaunchError, match="no model"):
        TritonServer(TritonOptions(tmp_path)).start()
