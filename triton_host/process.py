"""One ``tritonserver`` process: its command line, start, readiness, stop, and the clean-up after
it (its private backend folder, stray Python-backend stubs, shared-memory regions).

What it runs comes from ``TritonOptions`` (triton_host/options.py) and where the binary is from
``TritonInstall`` (triton_host/install.py); restarting a dead one is the supervisor's job
(triton_host/supervisor.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

from triton_host.errors import TritonLaunchError
from triton_host.install import TritonInstall, find_tritonserver, link_backends, server_environment
from triton_host.options import Endpoints, TritonOptions, check_repository

# Where the Python backend keeps its shared-memory regions (one file per model instance).
SHM_DIR = Path("/dev/shm")


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


def describe_returncode(returncode: int) -> str:
    """A ``Popen.returncode`` in words (negative: the signal that killed the process)."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by signal {-returncode} ({signal.Signals(-returncode).name})"
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


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
        """This server's own backends folder (removed when the process has ended)."""
        self._workdir = Path(tempfile.mkdtemp(prefix="imdsr-triton-"))
        return link_backends(self.install, self._workdir)

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
        return server_environment(self.install, os.environ)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Spawn tritonserver. Call from a long-lived thread: on Linux the child is sent SIGTERM
        when the thread that started it exits (so a crashed launcher leaves no server behind)."""
        if self.process is not None:
            raise TritonLaunchError("already started")
        check_repository(self.options.repo)
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
