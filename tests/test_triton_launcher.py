"""The launcher: which tritonserver, with what environment, and `imdsr triton` start/stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from triton_host.launcher import (
    PYTHON_VERSION_ENV,
    SITE_PACKAGES_ENV,
    TritonLaunchError,
    TritonOptions,
    TritonServer,
    find_tritonserver,
    free_ports,
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


@pytest.fixture(scope="module")
def small_repo(tmp_path_factory: pytest.TempPathFactory, variant_weights) -> Path:
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving

    cfg = load_serving()
    cfg = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={"intra_op_threads": 1,
                                                                   "warmup_batch_sizes": []})})
    out = tmp_path_factory.mktemp("small") / "repo"
    write_repository(out, "cpu", [ModelSource("c4", variant_weights["c4"])], cfg)
    return out


def _ready(http_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.triton
@pytest.mark.timeout(120)
def test_cli_starts_waits_and_stops_cleanly_on_sigterm(small_repo: Path, tmp_path: Path) -> None:
    http, grpc, metrics = free_ports(3)
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen([str(IMDSR), "triton", "--repo", str(small_repo), "--host", "127.0.0.1",
                             "--http-port", str(http), "--grpc-port", str(grpc),
                             "--metrics-port", str(metrics), "--exit-timeout", "5"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while b"imdsr triton: ready" not in (tmp_path / "out.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "out.log").read_text()
            assert time.monotonic() < deadline, "not ready in 90 s"
            time.sleep(0.2)
        assert _ready(http)
        proc.send_signal(signal.SIGTERM)  # what Kubernetes sends
        assert proc.wait(timeout=30) == 0
        assert not _ready(http)  # Triton went down with the launcher
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


@pytest.mark.triton
@pytest.mark.timeout(120)
def test_cli_exits_non_zero_when_a_model_cannot_load(small_repo: Path, tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "repo"
    shutil.copytree(small_repo, broken)
    (broken / "imdeception_c4" / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    http, grpc, metrics = free_ports(3)
    res = subprocess.run([str(IMDSR), "triton", "--repo", str(broken), "--host", "127.0.0.1",
                          "--http-port", str(http), "--grpc-port", str(grpc),
                          "--metrics-port", str(metrics)], capture_output=True, text=True, timeout=90)
    assert res.returncode == 1
    assert "exited with code" in res.stderr
    assert "imdeception_c4" in res.stdout + res.stderr  # Triton's own load error names the model
