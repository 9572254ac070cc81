"""The launcher: which tritonserver, with what environment, `imdsr triton` start/stop, and the
supervisor's restart, backoff and give-up rules (with stand-in servers; the real one is exercised
by tests/integration/test_supervision.py)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from triton_host.errors import TritonLaunchError
from triton_host.install import PYTHON_VERSION_ENV, SITE_PACKAGES_ENV, find_tritonserver
from triton_host.options import TritonOptions
from triton_host.process import TritonServer, describe_returncode
from triton_host.supervisor import FailureWindow, RestartPolicy, TritonSupervisor, _log_tail

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


def test_tritonserver_binds_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdsr.cli import app

    assert TritonOptions(tmp_path).host == "127.0.0.1"
    for command in ("triton", "serve", "gateway"):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "[default: 127.0.0.1]" in result.output, (command, result.output)


# --- supervision -------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(backoff_s=1.0, backoff_max_s=10.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert RestartPolicy().delay(1) == 1.0 and RestartPolicy().max_failures == 5
    with pytest.raises(ValueError):
        RestartPolicy(max_failures=0)


def test_failures_older_than_the_window_are_forgotten() -> None:
    window = FailureWindow(300.0)
    assert [window.record(t) for t in (0.0, 10.0, 20.0)] == [1, 2, 3]
    assert window.record(305.0) == 3      # the one at 0 s has left the window
    assert window.record(1000.0) == 1     # a crash after a long healthy run starts afresh


def test_returncodes_in_words() -> None:
    assert describe_returncode(1) == "exited with code 1"
    assert describe_returncode(-9) == "was killed by signal 9 (SIGKILL)"


class FakeServer:
    """Stands in for TritonServer: ready after ``ready_after`` s, exits ``code`` after ``dies_after``
    s (None: runs until stopped)."""

    def __init__(self, ready_after: float = 0.0, dies_after: float | None = None, code: int = 1) -> None:
        self.ready_after, self.dies_after, self.code = ready_after, dies_after, code
        self.started_at: float | None = None
        self.stopped = False
        self.pid = 4242

    def _age(self) -> float:
        assert self.started_at is not None
        return time.monotonic() - self.started_at

    def start(self) -> None:
        self.started_at = time.monotonic()

    def poll(self) -> int | None:
        if self.stopped:
            return 0
        return self.code if self.dies_after is not None and self._age() >= self.dies_after else None

    def is_ready(self) -> bool:
        return self.poll() is None and self._age() >= self.ready_after

    def stop(self, timeout_s: float | None = None) -> int:
        self.stopped = True
        return 0

    def exit_description(self) -> str:
        return describe_returncode(self.code)


def _supervisor(servers: list[FakeServer], tmp_path: Path, **policy: float) -> TritonSupervisor:
    made = iter(servers)
    given_up: list[str] = []
    supervisor = TritonSupervisor(TritonOptions(tmp_path), RestartPolicy(**policy),
                                  server_factory=lambda: next(made), on_give_up=given_up.append)
    supervisor.given_up = given_up  # type: ignore[attr-defined]
    return supervisor


def _wait_for(condition, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_supervisor_restarts_a_dead_server_and_stops_cleanly(tmp_path: Path) -> None:
    first, second = FakeServer(dies_after=0.2, code=-9), FakeServer()
    sup = _supervisor([first, second], tmp_path, backoff_s=0.05)
    with sup:
        assert sup.wait_ready(5) and sup.server is first
        _wait_for(lambda: sup.server is second and sup.ready.is_set())
        assert sup.restarts == 1 and sup.starts == 2 and len(sup.failures) == 1
        assert sup.last_failure is not None and "killed by signal 9 (SIGKILL)" in sup.last_failure
        assert "after" in sup.last_failure and "s up" in sup.last_failure
    assert second.stopped and not sup.running
    assert not sup.gave_up.is_set() and sup.given_up == []  # a stop is not a failure
    assert sup.restarts == 1


def test_supervisor_gives_up_after_max_failures_with_backoff(tmp_path: Path) -> None:
    servers = [FakeServer(ready_after=60, dies_after=0.0, code=1) for _ in range(5)]
    sup = _supervisor(servers, tmp_path, backoff_s=0.05, backoff_max_s=0.1, max_failures=3)
    start = time.monotonic()
    sup.start()
    assert sup.wait_ready(10) is False
    took = time.monotonic() - start
    assert sup.gave_up.is_set() and not sup.ready.is_set()
    assert sup.starts == 3 and sup.restarts == 2      # no fourth start
    assert took >= 0.05 + 0.1                         # waited 0.05, then 0.1 (capped) between starts
    (reason,) = sup.given_up
    assert reason == sup.give_up_reason
    assert reason.startswith("3 failures within 300 s; last: tritonserver (pid 4242) exited with code 1")
    assert "before it was ready" in reason
    sup.stop()


def test_a_server_never_ready_is_stopped_and_counts_as_a_failure(tmp_path: Path) -> None:
    stuck = FakeServer(ready_after=60)
    sup = _supervisor([stuck], tmp_path, max_failures=1, ready_timeout_s=0.2)
    sup.start()
    _wait_for(sup.gave_up.is_set)
    assert stuck.stopped and "not ready 0.2 s after its start" in (sup.give_up_reason or "")
    sup.stop()


def test_stop_during_the_backoff_returns_at_once(tmp_path: Path) -> None:
    sup = _supervisor([FakeServer(dies_after=0.0), FakeServer()], tmp_path, backoff_s=60)
    sup.start()
    _wait_for(lambda: len(sup.failures) == 1)
    start = time.monotonic()
    sup.stop()
    assert time.monotonic() - start < 2 and not sup.running and sup.starts == 1


def test_the_end_of_tritons_log_keeps_its_errors(tmp_path: Path) -> None:
    log = tmp_path / "triton.log"
    old = "E1125 08:00:00.000 1 server.cc:1] an older run's error\n"
    log.write_text(old)
    lines = ["I1125 08:06:45.1 6209 model.cc:1] \"loading\"",
             "E1125 08:06:45.3 6209 model_lifecycle.cc:642] \"failed to load 'imdeception_c4'\"",
             *(f"| table row {i} |" for i in range(40)),
             "error: creating server: Internal - failed to load all models"]
    log.write_text(old + "\n".join(lines) + "\n")
    tail = _log_tail(log, len(old)).splitlines()
    assert tail == [lines[1], "| table row 38 |", "| table row 39 |", lines[-1]]


def test_supervisor_refuses_a_missing_repository_at_once(tmp_path: Path) -> None:
    with pytest.raises(TritonLaunchError, match="does not exist"):
        TritonSupervisor(TritonOptions(tmp_path / "nope")).start()
