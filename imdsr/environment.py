"""Every ``IMDSR_`` environment variable the project reads, and the refusal of any other.

The variables are defined where they are read: the gateway's pydantic ``Settings`` fields
(``service/settings.py``), the ``envvar=`` of the command line's options (launcher, exporter,
client, benchmarks), and the few below that no option or field can hold. ``imdsr`` checks the
environment against all of them before any command runs, so a misspelt variable (the timeout
without its ``_S``) stops start-up with a message naming it and the closest known name, instead of
being silently ignored.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

PREFIX = "IMDSR_"

# Read outside any option or settings field, each with its reader.
OTHER_VARIABLES: dict[str, str] = {
    # set by the launcher for the Python-backend stub, which ignores PYTHONPATH (triton_host/install.py)
    "IMDSR_TRITON_SITE_PACKAGES": "triton_host/python_backend/model.py",
    "IMDSR_TRITON_PYTHON": "triton_host/python_backend/model.py",
    # Locust's own command line has no room for ours (loadtest/locustfile.py)
    "IMDSR_LOAD_SCENARIOS": "loadtest/locustfile.py",
    "IMDSR_LOAD_SHAPE": "loadtest/locustfile.py",
    "IMDSR_LOAD_STEP_S": "loadtest/locustfile.py",
    # the GPU check's shell script to its Python part (bench/gpu_check.sh -> bench/gpu_check.py)
    "IMDSR_GPU_CHECK_STUB_SITE": "bench/gpu_check.py",
    "IMDSR_GPU_CHECK_CARRY": "bench/gpu_check.py",
    # tests/integration/test_web_page.py rewrites docs/web_page.png
    "IMDSR_UPDATE_SCREENSHOT": "tests/integration/test_web_page.py",
    # a Docker build argument, also visible in the image's environment at build time
    "IMDSR_VERSION": "Dockerfile",
}


class UnknownVariableError(ValueError):
    """An ``IMDSR_`` variable that nothing reads."""


def check_environment(known: Iterable[str], environ: Mapping[str, str]) -> None:
    """Raise ``UnknownVariableError`` naming each ``IMDSR_`` variable of ``environ`` not in
    ``known`` (nor in ``OTHER_VARIABLES``), with the closest known name."""
    names = set(known) | set(OTHER_VARIABLES)
    unknown = sorted(v for v in environ if v.startswith(PREFIX) and v not in names)
    if not unknown:
        return
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise UnknownVariableError(
        f"unknown environment variable{'s' if len(unknown) > 1 else ''}: {', '.join(parts)}; "
        "nothing reads it, so it would be ignored: fix or unset it")
