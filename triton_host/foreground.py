"""``imdsr triton``'s run: one ``tritonserver`` in the foreground, no restarts (a container's
runtime or Kubernetes restarts it), the launcher's signals forwarded to it once."""

from __future__ import annotations

import signal
import sys

from triton_host.errors import TritonLaunchError
from triton_host.options import TritonOptions
from triton_host.process import TritonServer


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
