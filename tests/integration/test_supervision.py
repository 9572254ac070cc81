"""Failure handling with a real `tritonserver` behind the real `imdsr serve` / `imdsr gateway`.

* `kill -9` of Triton during a burst: every request gets 200 or a quick 503 with Retry-After, and
  the same `imdsr serve` process restarts Triton on the same ports and serves again;
* a Triton that keeps failing makes `imdsr serve` give up: gateway stopped, exit status 1;
* SIGTERM of `imdsr serve` is a stop, not a crash;
* a gateway with no Triton behind it answers 503 at once; a Triton that holds requests in its
  queue gets 504 within the gateway's Triton timeout.

One small repository (c4, plus a "slow" c8 whose dynamic batcher waits a minute for a batch of 8
that never comes), loopback ports only.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from triton_host.launcher import free_ports

pytestmark = pytest.mark.triton

IMDSR = Path(sys.executable).parent / "imdsr"
TRITON_TIMEOUT_S = 4.0     # IMDSR_TRITON_TIMEOUT_S of the gateways under test
SLACK_S = 3.0              # what a loaded 2-core machine may add to it
RETRY_AFTER_S = 5          # IMDSR_UNAVAILABLE_RETRY_AFTER_S


def _png(side: int = 24) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, variant_weights: dict[str, Path]) -> Path:
    """c4 as served on CPU, and c8 configured so that Triton holds every request in its queue."""
    from export.repo import ModelSource, write_repository
    from export.serving import load_serving

    cfg = load_serving()
    quick = cfg.model_copy(update={"cpu": cfg.cpu.model_copy(update={
        "intra_op_threads": 1, "warmup_batch_sizes": [], "instances": {"default": 1}})})
    root = tmp_path_factory.mktemp("supervision")
    out = root / "repo"
    write_repository(out, "cpu", [ModelSource("c4", variant_weights["c4"])], quick)
    # The dynamic batcher waits up to a minute for a preferred batch of 8: a lone request stays
    # queued until the gateway's per-tile deadline (also Triton's queue timeout for it) expires.
    slow = quick.model_copy(update={
        "batching": quick.batching.model_copy(update={"max_queue_delay_us": 60_000_000}),
        "cpu": quick.cpu.model_copy(update={"preferred_batch_sizes": [8]})})
    write_repository(root / "slow", "cpu", [ModelSource("c8", variant_weights["c8"])], slow)
    shutil.move(root / "slow" / "imdeception_c8", out / "imdeception_c8")
    return out


def _children_named(pid: int, name: str) -> list[int]:
    try:
        import psutil
    except ImportError:  # psutil comes with locust (the loadtest extra); /proc says the same
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            comm = text[text.index("(") + 1:text.rindex(")")]
            ppid = int(text[text.rindex(")") + 2:].split()[1])
            if ppid == pid and comm == name[:15]:
                found.append(int(stat.parent.name))
        return found
    try:
        return [c.pid for c in psutil.Process(pid).children() if c.name() == name]
    except psutil.NoSuchProcess:
        return []


def _listening(pid: int) -> set[str]:
    """The addresses ``pid`` listens on (TCP)."""
    psutil = pytest.importorskip("psutil")
    return {c.laddr.ip for c in psutil.Process(pid).net_connections("tcp") if c.status == "LISTEN"}


class Service:
    """`imdsr serve` (or `imdsr gateway`) in its own process, its output in ``log``."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.port, *self.triton_ports = free_ports(4)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.args = [str(IMDSR), *args, "--port", str(self.port)]
        if args[0] == "serve":
            http, grpc, metrics = self.triton_ports
            self.args += ["--triton-http-port", str(http), "--triton-grpc-port", str(grpc),
                          "--triton-metrics-port", str(metrics)]
        self.env = {**os.environ, "IMDSR_DEFAULT_MODEL": "c4",
                    "IMDSR_TRITON_TIMEOUT_S": str(TRITON_TIMEOUT_S),
                    "IMDSR_UNAVAILABLE_RETRY_AFTER_S": str(RETRY_AFTER_S), **(env or {})}
        self._out = log.open("wb")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response | None:
        try:
            return httpx.get(self.url + path, timeout=timeout)
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout_s: float = 90.0) -> float:
        """Seconds until ``/readyz`` answers 200 (the process must stay up meanwhile)."""
        start = time.monotonic()
        while True:
            r = self.get("/readyz", timeout=3)
            if r is not None and r.status_code == 200:
                return time.monotonic() - start
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() - start < timeout_s, f"not ready in {timeout_s} s:\n{self.output()}"
            time.sleep(0.2)

    def triton_pid(self) -> int:
        pids = _children_named(self.proc.pid, "tritonserver")
        assert len(pids) == 1, (pids, self.output())
        return pids[0]

    def wait_exit(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout_s} s:\n{self.output()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # its Triton gets SIGTERM from the kernel (PDEATHSIG)
                self.proc.wait()
        self._out.close()


def _serve(repo: Path, log: Path, *extra: str, env: dict[str, str] | None = None) -> Service:
    return Service(["serve", "--host", "127.0.0.1", "--repo", str(repo),
                    "--triton-log", str(log.with_suffix(".triton.log")), *extra], log, env)


@pytest.fixture(scope="module")
def served(repo: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - Iterator[Service]
    """One `imdsr serve` with the default supervision settings."""
    service = _serve(repo, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        service.wait_ready()
        yield service
    finally:
        service.close()


def _post(url: str, model: str = "c4", timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/upscale", params={"model": model}, content=PNG,
                      headers={"Content-Type": "image/png"}, timeout=timeout)


# --------------------------------------------------------------------------- slow Triton
@pytest.mark.timeout(60)
def test_a_triton_holding_requests_gives_504_within_the_timeout(served: Service) -> None:
    start = time.monotonic()
    r = _post(served.url, model="c8")
    took = time.monotonic() - start
    assert r.status_code == 504 and r.json()["error"] == "triton_timeout", r.text
    assert TRITON_TIMEOUT_S * 0.75 <= took <= TRITON_TIMEOUT_S + SLACK_S, took
    assert _post(served.url).status_code == 200  # the other model was never held up


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


# --------------------------------------------------------------------------- kill -9 and back
async def _burst_through_a_crash(service: Service, workers: int = 6, kill_after_s: float = 1.0,
                                  recover_within_s: float = 90.0) -> tuple[list[tuple], float, int]:
    """Requests from ``workers`` clients while Triton is killed; they go on until /readyz has been
    200 again for a second. Returns (status, retry-after, seconds, body) per response, the
    seconds from the kill to /readyz 200, and the killed pid."""
    results: list[tuple] = []
    done = asyncio.Event()
    killed: dict[str, float] = {}

    async with httpx.AsyncClient(timeout=TRITON_TIMEOUT_S + 60) as client:
        async def worker() -> None:
            while not done.is_set():
                start = time.monotonic()
                r = await client.post(f"{service.url}/upscale", params={"model": "c4"}, content=PNG,
                                      headers={"Content-Type": "image/png"})
                body = r.text[:300] if r.status_code != 200 else ""
                results.append((r.status_code, r.headers.get("retry-after"), time.monotonic() - start, body))
                if r.status_code != 200:
                    await asyncio.sleep(0.2)

        async def killer() -> None:
            await asyncio.sleep(kill_after_s)
            killed["pid"] = service.triton_pid()
            os.kill(killed["pid"], signal.SIGKILL)
            killed["at"] = time.monotonic()
            await asyncio.sleep(0.5)
            while True:
                assert service.proc.poll() is None, service.output()
                assert time.monotonic() - killed["at"] < recover_within_s, service.output()
                try:
                    r = await client.get(f"{service.url}/readyz", timeout=3)
                    if r.status_code == 200:
                        killed["recovered"] = time.monotonic()
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            done.set()

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            await killer()
        finally:
            done.set()
            await asyncio.gather(*tasks)
    return results, killed["recovered"] - killed["at"], int(killed["pid"])


@pytest.mark.timeout(150)
def test_kill_9_during_a_burst_is_answered_quickly_and_triton_comes_back(served: Service) -> None:
    serve_pid = served.proc.pid
    results, recovery_s, old_triton = asyncio.run(_burst_through_a_crash(served))
    print(f"\nrecovery after kill -9: /readyz 200 again {recovery_s:.1f} s after the kill; "
          f"{len(results)} requests: {sorted({r[0] for r in results})}")

    statuses = [r[0] for r in results]
    assert set(statuses) <= {200, 503}, [r for r in results if r[0] not in (200, 503)][:5]
    for status, retry_after, _took, body in results:
        if status == 503:
            assert retry_after is not None and int(retry_after) > 0, body
    slowest = max(r[2] for r in results)
    assert slowest <= TRITON_TIMEOUT_S + SLACK_S, f"a request took {slowest:.1f} s"
    # 200s before the kill, quick 503s while Triton was down, 200s again afterwards
    assert statuses[0] == 200 and 503 in statuses and statuses[-1] == 200, statuses
    assert recovery_s < 90

    # the same `imdsr serve` restarted it, and says so
    assert served.proc.poll() is None and served.proc.pid == serve_pid
    assert served.triton_pid() != old_triton
    r = _post(served.url)
    assert r.status_code == 200, r.text
    out = served.output()
    assert f"tritonserver (pid {old_triton}) was killed by signal 9 (SIGKILL)" in out, out
    assert "restarting tritonserver in" in out and "tritonserver restarted (restart 1" in out, out
    assert "the end of its log" in out  # --triton-log: its last lines are shown
    # nothing of the killed Triton lingers: its Python-backend stubs share its process group
    leftovers = [d.name for d in Path("/proc").iterdir()
                 if d.name.isdigit() and _pgid(int(d.name)) == old_triton]
    assert not leftovers, leftovers


@pytest.mark.timeout(90)
def test_sigterm_stops_serve_cleanly_and_is_not_a_crash(served: Service) -> None:
    triton, serve_pid = served.triton_pid(), served.proc.pid
    restarts_before = served.output().count("restarting tritonserver in")
    served.proc.send_signal(signal.SIGTERM)
    assert served.wait_exit(60) == 0, served.output()
    out = served.output()
    assert out.count("restarting tritonserver in") == restarts_before, out
    assert "giving up" not in out
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # reaped by serve; the pid is gone (or about to be)
            os.kill(triton, 0)
            time.sleep(0.1)
    # no shared memory left behind, not even by the Triton that was killed
    assert not list(Path("/dev/shm").glob(f"imdsr{serve_pid}x*"))


# --------------------------------------------------------------------------- giving up
@pytest.mark.timeout(90)
def test_serve_gives_up_and_stops_the_gateway_when_triton_dies_too_often(repo: Path,
                                                                         tmp_path: Path) -> None:
    service = _serve(repo, tmp_path / "serve.log", "--triton-max-failures", "1")
    try:
        service.wait_ready()
        os.kill(service.triton_pid(), signal.SIGKILL)
        assert service.wait_exit(60) == 1, service.output()
        out = service.output()
        assert "giving up on tritonserver: 1 failure within 300 s" in out, out
        assert "gave up on Triton, gateway stopped" in out, out
        assert service.get("/healthz", timeout=2) is None  # the gateway is gone too
    finally:
        service.close()


@pytest.mark.timeout(90)
def test_serve_gives_up_after_the_configured_failures_when_a_model_cannot_load(
        repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(repo, broken)
    shutil.rmtree(broken / "imdeception_c8")
    (broken / "imdeception_c4" / "1" / "model.onnx").write_bytes(b"not an onnx graph")
    start = time.monotonic()
    service = _serve(broken, tmp_path / "serve.log", "--triton-max-failures", "3",
                     env={"IMDSR_TRITON_BACKOFF_S": "0.1"})
    try:
        code = service.wait_exit(75)
    finally:
        service.close()
    out = service.output()
    assert code == 1, out
    assert out.count("tritonserver restarted (restart") == 2, out
    assert "giving up on tritonserver: 3 failures within 300 s; last: tritonserver" in out, out
    assert "exited with code 1" in out and "before it was ready" in out, out
    assert "imdeception_c4" in out  # the tail of Triton's log names the model that failed
    assert "Uvicorn running" not in out  # the gateway never started
    print(f"\ngave up after {time.monotonic() - start:.1f} s")


# --------------------------------------------------------------------------- no Triton
@pytest.mark.timeout(60)
def test_gateway_without_triton_answers_503_at_once_and_binds_loopback(tmp_path: Path) -> None:
    (closed,) = free_ports(1)
    service = Service(["gateway"], tmp_path / "gateway.log",
                      env={"IMDSR_TRITON_URL": f"127.0.0.1:{closed}"})
    try:
        deadline = time.monotonic() + 30
        while (r := service.get("/healthz")) is None or r.status_code != 200:
            assert service.proc.poll() is None and time.monotonic() < deadline, service.output()
            time.sleep(0.1)
        assert _listening(service.proc.pid) == {"127.0.0.1"}  # no --host: loopback only
        for _ in range(2):
            start = time.monotonic()
            ready = service.get("/readyz")
            assert ready is not None and ready.status_code == 503, service.output()
            r = _post(service.url)
            took = time.monotonic() - start
            assert r.status_code == 503 and r.json()["error"] == "triton_unavailable", r.text
            assert r.headers["retry-after"] == str(RETRY_AFTER_S)
            assert took < 3.0, took
    finally:
        service.close()
