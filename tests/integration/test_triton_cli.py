"""`imdsr triton` for real: start, wait, stop on SIGTERM; a model that cannot load."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from triton_host.launcher import free_ports

IMDSR = Path(sys.executable).parent / "imdsr"


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
