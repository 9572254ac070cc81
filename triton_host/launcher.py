"""Run a real Triton Inference Server as a child process: find it, start it, wait, stop it, and
(``TritonSupervisor``, what ``imdsr serve`` uses) restart it with backoff when it dies.

``tritonserver`` comes from PATH (NGC containers, Jetson releases) or, when absent, from the
``nvidia-pytriton`` wheel, which ships the binary and the Python backend with one stub per Python
version. Stdlib only: ``imdsr triton`` and ``imdsr serve`` never import torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import re
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

# Read by triton_host/python_backend/model.py inside the backend's stub interpreter, which ignores
# PYTHONPATH: the site-packages to put first, and the Python version they were built for.
SITE_PACKAGES_ENV = "IMDSR_TRITON_SITE_PACKAGES"
PYTHON_VERSION_ENV = "IMDSR_TRITON_PYTHON"
PY_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"
# Where the Python backend keeps its shared-memory regions (one file per model instance).
SHM_DIR = Path("/dev/shm")

log = logging.getLogger("imdsr.triton")


class TritonLaunchError(RuntimeError):
    """Triton could not be found, started, or did not become ready."""


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


@dataclass(frozen=True)
class TritonOptions:
    repo: Path
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    host: str = "127.0.0.1"  # loopback unless told otherwise ("0.0.0.0": every interface)
    log_verbose: int = 0
    exit_timeout_s: int = 30
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host


class Endpoints:
    """The URLs of a Triton started with ``self.options`` (the same on every restart)."""

    options: TritonOptions

    @property
    def grpc_url(self) -> str:
        return f"{self.options.client_host}:{self.options.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.options.client_host}:{self.options.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.options.client_host}:{self.options.metrics_port}/metrics"


def check_repository(repo: Path) -> None:
    """Raise unless ``repo`` is a folder with at least one model in it."""
    repo = Path(repo)
    if not repo.is_dir():
        raise TritonLaunchError(f"model repository {repo} does not exist")
    if not any(repo.glob("*/config.pbtxt")):
        raise TritonLaunchError(f"model repository {repo} has no model (no */config.pbtxt)")


def free_ports(n: int = 3, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports free right now (Triton cannot bind port 0 and report it back)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _load_prctl() -> Any:  # the libc function, or None off glibc
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return None


# Resolved here, not in the forked child: loading a library after fork can deadlock.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux: if the launcher dies without stopping Triton (SIGKILL, crash), the kernel sends the
    # child SIGTERM instead of leaving a server holding the ports.
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


class TritonServer(Endpoints):
    """One ``tritonserver`` process; usable as a context manager."""

    def __init__(self, options: TritonOptions, install: TritonInstall | None = None,
                 log: IO[bytes] | None = None) -> None:
        self.options = options
        self.install = install or find_tritonserver()
        self.log = log  # None: inherit the launcher's stdout/stderr
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._signalled = False
        # Readiness is checked against this id: on a shared machine another server may already
        # answer on a port we were told was free, and its 200 must not pass for ours.
        self.server_id = f"imdsr-{os.getpid()}-{secrets.token_hex(4)}"
        # Each server gets its own shared-memory prefix: several servers (parallel test runs,
        # a restarted one) on one machine would otherwise collide in /dev/shm.
        self.shm_prefix = f"imdsr{os.getpid()}x{secrets.token_hex(4)}x"

    # -- process set-up ----------------------------------------------------------------------
    def _backend_dir(self) -> Path:
        """A backends/python folder: the wheel's library and utils plus the stub of our Python.

        The wheel keeps one stub per Python version aside; the backend looks for exactly one stub
        beside its library, so link the three files into a private folder (nothing is copied).
        """
        assert self.install.python_backend and self.install.python_stub
        self._workdir = Path(tempfile.mkdtemp(prefix="imdsr-triton-"))
        python = self._workdir / "backends" / "python"
        python.mkdir(parents=True)
        for src in self.install.python_backend.iterdir():
            if src.is_file():
                (python / src.name).symlink_to(src)
        (python / "triton_python_backend_stub").symlink_to(self.install.python_stub)
        return self._workdir / "backends"

    def command(self) -> list[str]:
        o = self.options
        cmd = [
            str(self.install.binary),
            f"--model-repository={Path(o.repo).resolve()}",
            f"--http-address={o.host}", f"--http-port={o.http_port}",
            f"--grpc-address={o.host}", f"--grpc-port={o.grpc_port}",
            f"--metrics-address={o.host}", f"--metrics-port={o.metrics_port}",
            f"--id={self.server_id}",
            "--strict-readiness=true",
            f"--exit-timeout-secs={o.exit_timeout_s}",
            f"--log-verbose={o.log_verbose}",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if self.install.source == "pytriton":
            cmd.append(f"--backend-directory={self._backend_dir()}")
            if self.install.cache_dir:
                cmd.append(f"--cache-directory={self.install.cache_dir}")
        return cmd + list(o.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(p) for p in self.install.lib_dirs]
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

    def _check_repo(self) -> None:
        check_repository(self.options.repo)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn tritonserver. Call from a long-lived thread: on Linux the child is sent SIGTERM
        when the thread that started it exits (so a crashed launcher leaves no server behind)."""
        if self.process is not None:
            raise TritonLaunchError("already started")
        self._check_repo()
        out = self.log if self.log is not None else None
        self.process = subprocess.Popen(
            self.command(), env=self.environment(), stdout=out, stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches only the launcher, which forwards it once.
            start_new_session=True, preexec_fn=_die_with_parent,
        )

    def is_ready(self) -> bool:
        """Every model loaded, asked of this server (not of whatever else holds the port)."""
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2", timeout=2) as resp:
                if json.load(resp).get("name") != self.server_id:
                    return False
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until every model is loaded (strict readiness); raise if Triton exits first."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                if self._signalled:
                    return
                raise TritonLaunchError(f"tritonserver exited with code {code} before it was ready")
            if self.is_ready():
                return
            time.sleep(0.25)
        raise TritonLaunchError(f"tritonserver not ready after {timeout_s:.0f} s")

    def poll(self) -> int | None:
        """None while Triton runs; once it has ended (reaped), its status as ``wait()`` gives it."""
        if self.process is None or self.process.poll() is None:
            return None
        return self.wait()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_description(self) -> str:
        """How the process ended, in words: "exited with code 1", "was killed by signal 9 (SIGKILL)"."""
        if self.process is None or self.process.returncode is None:
            return "is running"
        return describe_returncode(self.process.returncode)

    @property
    def signalled(self) -> bool:
        """Whether a stop signal was sent (an exit after it is not a failure)."""
        return self._signalled

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signalled = True
            self.process.send_signal(signum)

    def wait(self) -> int:
        """Wait for the process to end; return its exit status (128+N when killed by signal N)."""
        assert self.process is not None
        code = self.process.wait()
        self._cleanup()
        return 128 - code if code < 0 else code

    def stop(self, timeout_s: float | None = None) -> int:
        """SIGTERM, then SIGKILL if Triton is still draining after ``timeout_s``."""
        if self.process is None:
            return 0
        self.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s if timeout_s is not None else self.options.exit_timeout_s + 5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self.wait()

    def _cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        # A Triton that was killed (SIGKILL, OOM) leaves its Python-backend stubs running (each
        # holds a model and hundreds of MB) and their shared-memory regions behind. The stubs are
        # in Triton's own session (start_new_session), so its process group names them all.
        if self.process is not None and self.process.returncode is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            for region in SHM_DIR.glob(f"{self.shm_prefix}*"):
                with contextlib.suppress(OSError):
                    region.unlink()

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def describe_returncode(returncode: int) -> str:
    """A ``Popen.returncode`` in words (negative: the signal that killed the process)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


# --- supervision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a dead Triton and when to stop trying.

    Every unexpected end counts as a failure: an exit or a kill while serving, an exit before
    being ready, no readiness within ``ready_timeout_s`` (that server is then stopped). The n-th
    failure within the last ``failure_window_s`` seconds waits ``backoff_s * 2**(n-1)`` seconds
    (at most ``backoff_max_s``) before the next start; the ``max_failures``-th gives up. Failures
    older than the window are forgotten, so a crash after a long healthy run restarts quickly.
    """

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_failures: int = 5
    failure_window_s: float = 300.0
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


def serve_forever(options: TritonOptions, ready_timeout_s: float = 300.0) -> int:
    """Run Triton in the foreground: forward SIGINT/SIGTERM/SIGHUP, return Triton's exit status."""
    server = TritonServer(options)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, _frame: server.send_signal(s))
    print(f"imdsr triton: starting {server.install.binary} ({server.install.source}) "
          f"on {options.repo}", flush=True)
    server.start()
    try:
        server.wait_ready(ready_timeout_s)
    except TritonLaunchError as exc:
        print(f"imdsr triton: {exc}", file=sys.stderr, flush=True)
        server.stop()
        return 1
    if not server.signalled:
        print(f"imdsr triton: ready  grpc={server.grpc_url}  http={server.http_url}  "
              f"metrics={server.metrics_url}", flush=True)
    return server.wait()
