"""How a ``tritonserver`` is to run: its repository, ports, address and timeouts, the URLs they
give, and the checks made before a start (a repository with a model, ports free right now)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from imdsr.contract import DEFAULT_GRPC_PORT, DEFAULT_HTTP_PORT, DEFAULT_METRICS_PORT
from triton_host.errors import TritonLaunchError


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
