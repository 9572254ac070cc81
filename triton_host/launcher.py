"""Run a real Triton Inference Server as a child process: find it, start it, wait, stop it.

``tritonserver`` comes from PATH (NGC containers, Jetson releases) or, when absent, from the
``nvidia-pytriton`` wheel, which ships the binary and the Python backend with one stub per Python
version. Stdlib only: ``imdsr triton`` and ``imdsr serve`` never import torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import secrets
import shutil
import signal
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT

# Read by triton_host/python_backend/model.py inside the backend's stub interpreter, which ignores
# PYTHONPATH: the site-packages to put first, and the Python version they were built for.
SITE_PACKAGES_ENV = "IMDSR_TRITON_SITE_PACKAGES"
PYTHON_VERSION_ENV = "IMDSR_TRITON_PYTHON"
PY_VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"


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
    host: str = "0.0.0.0"
    log_verbose: int = 0
    exit_timeout_s: int = 30
    extra_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host


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


class TritonServer:
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

    # -- endpoints ---------------------------------------------------------------------------
    @property
    def grpc_url(self) -> str:
        return f"{self.options.client_host}:{self.options.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.options.client_host}:{self.options.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.options.client_host}:{self.options.metrics_port}/metrics"

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
        # Each server gets its own shared-memory prefix: several servers (parallel test runs)
        # on one machine would otherwise collide in /dev/shm.
        shm_prefix = f"imdsr{os.getpid()}x{secrets.token_hex(4)}x"
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
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
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
        repo = Path(self.options.repo)
        if not repo.is_dir():
            raise TritonLaunchError(f"model repository {repo} does not exist")
        if not any(repo.glob("*/config.pbtxt")):
            raise TritonLaunchError(f"model repository {repo} has no model (no */config.pbtxt)")

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
