"""A misspelt IMDSR_ variable stops the command line, naming it and the closest known name."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from imdsr.cli import app, known_variables
from imdsr.environment import OTHER_VARIABLES, UnknownVariableError, check_environment
from tests.support import ROOT

runner = CliRunner()


def _known() -> set[str]:
    return known_variables(typer.main.get_command(app))


def test_known_names_come_from_settings_options_and_the_few_others() -> None:
    known = _known()
    assert {"IMDSR_TRITON_TIMEOUT_S", "IMDSR_TILE", "IMDSR_API_KEYS"} <= known   # gateway Settings
    assert {"IMDSR_MODEL_REPOSITORY", "IMDSR_TARGET", "IMDSR_API_KEY"} <= known  # option envvars
    assert not set(OTHER_VARIABLES) & known  # an "other" that an option reads is a second copy


def test_every_variable_the_code_reads_is_known() -> None:
    # Every IMDSR_ name written in the project's code is read by something the check knows.
    pattern = re.compile(r"\bIMDSR_[A-Z0-9_]*[A-Z0-9]\b")
    found: set[str] = set()
    for folder in ("imdsr", "service", "training", "export", "triton_host", "bench", "loadtest"):
        for path in (ROOT / folder).rglob("*.py"):
            found |= set(pattern.findall(path.read_text()))
    found |= set(pattern.findall((ROOT / "Dockerfile").read_text()))
    for path in (ROOT / "k8s").rglob("*.yaml"):
        found |= set(pattern.findall(path.read_text()))
    assert found - _known() - set(OTHER_VARIABLES) == set()


def test_a_misspelt_variable_is_refused_with_the_closest_name() -> None:
    closest = r"IMDSR_TRITON_TIMEOUT \(did you mean IMDSR_TRITON_TIMEOUT_S\?\)"
    with pytest.raises(UnknownVariableError, match=closest):
        check_environment(_known(), {"IMDSR_TRITON_TIMEOUT": "5", "PATH": "/bin"})
    check_environment(_known(), {"IMDSR_TRITON_TIMEOUT_S": "5", "IMDSR_TRITON_PYTHON": "3.11"})


def test_the_command_line_stops_before_any_command() -> None:
    result = runner.invoke(app, ["model", "summary"], env={"IMDSR_TILES_INFLIGHT": "4"})
    assert result.exit_code == 2
    assert "IMDSR_TILES_INFLIGHT (did you mean IMDSR_TILES_IN_FLIGHT?)" in result.output
    ok = runner.invoke(app, ["model", "summary"], env={"IMDSR_TILES_IN_FLIGHT": "4"})
    assert ok.exit_code == 0, ok.output


def test_the_installed_command_refuses_too() -> None:
    proc = subprocess.run([sys.executable, "-m", "imdsr", "model", "summary"], capture_output=True,
                          text=True, env={"IMDSR_DEFAULT_MODLE": "c4", "PATH": "/usr/bin:/bin"},
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "IMDSR_DEFAULT_MODLE (did you mean IMDSR_DEFAULT_MODEL?)" in proc.stderr
