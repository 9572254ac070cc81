"""Keep one ``tritonserver`` running: restart it with backoff when it dies, reap it, say why it
ended (exit code or signal, and the end of its log), and give up after too many failures.

The process itself is ``TritonServer`` (triton_host/process.py); this is what ``imdsr serve``
runs it under. Stdlib only.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from imdsr.settings import LauncherSettings
from triton_host.errors import TritonLaunchError
from triton_host.install import TritonInstall, find_tritonserver
from triton_host.options import Endpoints, TritonOptions, check_repository
from triton_host.process import TritonServer

log = logging.getLogger("imdsr.triton")

@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead Triton and when to stop trying.

    Every unexpected end counts as a failure: an exit or a kill while serving, an exit before
    being ready, no readiness within ``ready_timeout_s`` (that server is then stopped). The n-th
    failure within the last ``failure_window_s`` seconds waits ``backoff_s * 2**(n-1)`` seconds
    (at most ``backoff_max_s``) before the next start; the ``max_failures``-th gives up. Failures
    older than the window are forgotten, so a crash after a long healthy run restarts quickly.
    """

    # The defaults are the launcher settings' (imdsr/settings.py), where each variable is defined.
    backoff_s: float = LauncherSettings.default("triton_backoff_s")
    backoff_max_s: float = LauncherSettings.default("triton_backoff_max_s")
    max_failures: int = LauncherSettings.default("triton_max_failures")
    failure_window_s: float = LauncherSettings.default("triton_failure_window_s")
    ready_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("backoff must not be negative")
        if self.failure_window_s <= 0 or self.ready_timeout_s <= 0:
            raise ValueError("failure_window_s and ready_timeout_s must be positive")

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next start, after ``failures`` failures within the window."""
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** max(0, failures - 1))


class FailureWindow:
    """Times of recent failures; ``record()`` says how many fall within the last ``window_s``."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: list[float] = []

    def record(self, now: float) -> int:
        self._times = [t for t in self._times if now - t < self.window_s] + [now]
        return len(self._times)

    def __len__(self) -> int:
        return len(self._times)


class SupervisedServer(Protocol):
    """What the supervisor needs of a server (``TritonServer``; tests pass fakes)."""

    @property
    def pid(self) -> int | None: ...
    def start(self) -> None: ...
    def poll(self) -> int | None: ...
    def is_ready(self) -> bool: ...
    def stop(self, timeout_s: float | None = None) -> int: ...
    def exit_description(self) -> str: ...


# Triton's own error lines (glog "E1125 08:06:45.33 ...", fatal "F...") and its last words.
_ERROR_LINE = re.compile(r"^(?:[EF]\d{4} |error: )")


def _log_tail(path: Path, offset: int, errors: int = 8, last: int = 3, width: int = 400,
              max_bytes: int = 256 * 1024) -> str:
    """What Triton wrote to ``path`` since ``offset`` that says why it ended: its error lines
    (the last ``errors``) and its ``last`` lines, each cut to ``width`` characters."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(offset, size - max_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    picked = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)][-errors:]
    picked = sorted(set(picked) | set(range(max(0, len(lines) - last), len(lines))))
    return "\n".join(lines[i] if len(lines[i]) <= width else lines[i][:width] + " ..." for i in picked)


class TritonSupervisor(Endpoints):
    """Keeps one ``tritonserver`` running: when it dies it is reaped, the reason is logged (exit
    code or signal, and the tail of its log when it writes to ``log_path``), and it is started
    again on the same ports (clients' gRPC channels reconnect by themselves) after the policy's
    backoff, until the policy gives up: then ``gave_up`` is set and ``on_give_up(reason)`` is
    called (from the supervisor's thread).

    Every process operation happens on the supervisor's own thread, which lives exactly as long
    as Triton should: the child is started with PR_SET_PDEATHSIG, which fires when the *thread*
    that started it exits. ``stop()`` (Ctrl-C, SIGTERM of the launcher) stops Triton cleanly and
    is never taken for a crash.
    """

    POLL_S = 0.2

    def __init__(self, options: TritonOptions, policy: RestartPolicy | None = None, *,
                 install: TritonInstall | None = None, log_path: Path | None = None,
                 on_give_up: Callable[[str], None] | None = None,
                 server_factory: Callable[[], SupervisedServer] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self.policy = policy or RestartPolicy()
        self.log_path = Path(log_path) if log_path is not None else None
        self.on_give_up = on_give_up
        # Found now, so that a missing tritonserver is the caller's error, not a restart loop.
        self.install = install if server_factory is not None else install or find_tritonserver()
        self._factory = server_factory or self._new_server
        self._clock = clock
        self.ready = threading.Event()      # set while the current server is ready
        self.gave_up = threading.Event()
        self.give_up_reason: str | None = None
        self.last_failure: str | None = None
        self.starts = 0
        self.restarts = 0                   # starts after the first
        self.failures = FailureWindow(self.policy.failure_window_s)
        self.server: SupervisedServer | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._log: IO[bytes] | None = None

    # -- control (any thread) -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise TritonLaunchError("already started")
        if self._factory == self._new_server:
            # A missing repository is the caller's error, not a reason to retry for minutes.
            check_repository(self.options.repo)
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        self._thread = threading.Thread(target=self._run, name="triton-supervisor", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block until Triton is ready (True), or the supervisor gave up or was stopped (False),
        or ``timeout_s`` passed (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.ready.is_set():
            if self.gave_up.is_set() or self._stopping.is_set() or not self.running:
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self.ready.wait(0.1)
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop supervising and stop Triton (SIGTERM, SIGKILL after its exit timeout)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s if timeout_s is not None else self.options.exit_timeout_s + 15)
        if self._log is not None and not self.running:
            self._log.close()
            self._log = None

    def __enter__(self) -> TritonSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the supervisor's thread ---------------------------------------------------------------
    def _new_server(self) -> TritonServer:
        return TritonServer(self.options, self.install, log=self._log)

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                reason = self._run_once()
                if reason is None:  # asked to stop
                    return
                self.last_failure = reason
                count = self.failures.record(self._clock())
                window = self.policy.failure_window_s
                if count >= self.policy.max_failures:
                    self._give_up(f"{count} failure{'s' if count > 1 else ''} within {window:g} s; "
                                  f"last: {reason}")
                    return
                delay = self.policy.delay(count)
                log.warning("restarting tritonserver in %.1f s (failure %d of %d allowed within %g s)",
                            delay, count, self.policy.max_failures, window)
                if self._stopping.wait(delay):
                    return
        except Exception as exc:  # a bug here must not leave the service up without Triton
            log.exception("tritonserver supervisor failed")
            if self.server is not None:
                self._stop_server(self.server)
            self._give_up(f"supervisor error: {exc!r}")

    def _log_offset(self) -> int:
        if self._log is None:
            return 0
        self._log.flush()
        return self._log.tell()

    def _stop_server(self, server: SupervisedServer) -> None:
        try:
            server.stop(timeout_s=self.options.exit_timeout_s + 5)
        except Exception:  # noqa: BLE001 - stopping must not raise out of the supervisor
            log.exception("stopping tritonserver failed")

    def _run_once(self) -> str | None:
        """Start one server and watch it: None once stopped on request, else why it failed."""
        server = self._factory()
        self.server = server
        offset = self._log_offset()
        try:
            server.start()
        except (TritonLaunchError, OSError) as exc:
            reason = f"tritonserver could not be started: {exc}"
            log.error("%s", reason)
            return reason
        self.starts += 1
        started = self._clock()
        if self.starts > 1:
            self.restarts += 1
            log.warning("tritonserver restarted (restart %d, pid %s) on the same ports", self.restarts,
                        server.pid)
        else:
            log.info("tritonserver started (pid %s)", server.pid)
        ready = False
        while True:
            if self._stopping.is_set():
                self.ready.clear()
                self._stop_server(server)
                return None
            if server.poll() is not None:
                self.ready.clear()
                if self._stopping.is_set():
                    return None
                up = self._clock() - started
                when = f"after {up:.1f} s up" if ready else f"{up:.1f} s after its start, before it was ready"
                reason = f"tritonserver (pid {server.pid}) {server.exit_description()} {when}"
                tail = _log_tail(self.log_path, offset) if self.log_path is not None else ""
                if tail:
                    log.error("%s; the end of its log (%s):\n%s", reason, self.log_path, tail)
                else:
                    log.error("%s", reason)
                return reason
            if not ready:
                if server.is_ready():
                    ready = True
                    self.ready.set()
                    log.info("tritonserver ready (pid %s, %.1f s after its start%s)", server.pid,
                             self._clock() - started, f", restart {self.restarts}" if self.restarts else "")
                elif self._clock() - started > self.policy.ready_timeout_s:
                    reason = (f"tritonserver (pid {server.pid}) not ready "
                              f"{self.policy.ready_timeout_s:g} s after its start")
                    log.error("%s: stopping it", reason)
                    self._stop_server(server)
                    return reason
            self._stopping.wait(self.POLL_S)

    def _give_up(self, reason: str) -> None:
        self.give_up_reason = reason
        self.ready.clear()
        log.error("giving up on tritonserver: %s", reason)
        self.gave_up.set()
        if self.on_give_up is not None:
            try:
                self.on_give_up(reason)
            except Exception:  # noqa: BLE001
                log.exception("on_give_up failed")

