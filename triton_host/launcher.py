"""Run a real Triton Inference Server as a child process: the names callers import, one place.

The work is split by role, as pytriton splits the server process from its configuration:

* ``triton_host/install.py``: which ``tritonserver`` (PATH, else the nvidia-pytriton wheel's),
  its libraries and Python backend, the environment its child gets;
* ``triton_host/options.py``: ``TritonOptions`` (repository, ports, address, timeouts), the URLs
  they give, the repository check, free ports;
* ``triton_host/process.py``: ``TritonServer``, one process (start, wait_ready, stop, clean-up);
* ``triton_host/supervisor.py``: ``TritonSupervisor`` (what ``imdsr serve`` uses), restarts with
  backoff, the reasons a server ended, giving up;
* ``triton_host/foreground.py``: ``serve_forever`` (``imdsr triton``).

Stdlib only: ``imdsr triton`` and ``imdsr serve`` never import torch.
"""

from __future__ import annotations

from triton_host.errors import TritonLaunchError
from triton_host.foreground import serve_forever
from triton_host.install import (
    PY_VERSION,
    PYTHON_VERSION_ENV,
    SITE_PACKAGES_ENV,
    TritonInstall,
    find_tritonserver,
)
from triton_host.options import Endpoints, TritonOptions, check_repository, free_ports
from triton_host.process import SHM_DIR, TritonServer, describe_returncode
from triton_host.supervisor import FailureWindow, RestartPolicy, SupervisedServer, TritonSupervisor

__all__ = [
    "PYTHON_VERSION_ENV",
    "PY_VERSION",
    "SHM_DIR",
    "SITE_PACKAGES_ENV",
    "Endpoints",
    "FailureWindow",
    "RestartPolicy",
    "SupervisedServer",
    "TritonInstall",
    "TritonLaunchError",
    "TritonOptions",
    "TritonServer",
    "TritonSupervisor",
    "check_repository",
    "describe_returncode",
    "find_tritonserver",
    "free_ports",
    "serve_forever",
]
