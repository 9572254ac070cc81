"""Every IMDSR_ variable is a field of one view of the settings (imdsr/settings.py); the command
line's options are made from those fields, and a misspelt variable stops the command line, naming
it and the closest known name."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel, Field
from typer.models import OptionInfo
from typer.testing import CliRunner

from imdsr.cli import app, known_variables
from imdsr.environment import UnknownVariableError, check_environment
from imdsr.settings import (
    ExternalVariables,
    LauncherSettings,
    PlanSettings,
    View,
    settings_view,
    variables,
    views,
)
from service.settings import Settings
from tests.support import ROOT

runner = CliRunner()

# Options that read a view's variable with a default of their own, each with its reason:
# `imdsr export trt` is a build by hand (the Python API); IMDSR_PLAN_BUILDER's default is the job's.
OWN_DEFAULTS = {("trt", "IMDSR_PLAN_BUILDER"): "api"}


def _commands(group: typer.Typer, prefix: str = "") -> Iterator[tuple[str, Callable[..., Any]]]:
    for info in group.registered_commands:
        assert info.callback is not None
        yield f"{prefix}{info.name or info.callback.__name__}", info.callback
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        yield from _commands(sub.typer_instance, f"{prefix}{sub.name} ")


def _env_options(callback: Callable[..., Any]) -> Iterator[tuple[str, OptionInfo, Any, Any]]:
    """(variable, option, parameter type, parameter default) of each option with an envvar."""
    hints = typing.get_type_hints(callback, include_extras=True)
    for name, param in inspect.signature(callback).parameters.items():
        hint = hints[name]
        for meta in typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ():
            if isinstance(meta, OptionInfo) and meta.envvar:
                assert isinstance(meta.envvar, str), (callback.__name__, name, meta.envvar)
                yield meta.envvar, meta, typing.get_args(hint)[0], param.default


def _click_envvars(command: object) -> set[str]:
    """The envvar of every option click builds, the sub-commands' included: what the CLI honours."""
    names: set[str] = set()
    for param in getattr(command, "params", []):
        env = getattr(param, "envvar", None)
        names.update([env] if isinstance(env, str) else list(env or []))
    for sub in (getattr(command, "commands", None) or {}).values():
        names |= _click_envvars(sub)
    return names


def test_known_names_are_the_fields_of_every_view() -> None:
    known = known_variables()
    assert Settings in views()  # the gateway's view registers itself (service/settings.py)
    every_field = {f"IMDSR_{field}".upper() for view in views() for field in view.model_fields}
    assert known == every_field == set(variables())
    assert {"IMDSR_TRITON_TIMEOUT_S", "IMDSR_TILE", "IMDSR_API_KEYS"} <= known   # gateway Settings
    assert {"IMDSR_MODEL_REPOSITORY", "IMDSR_TARGET", "IMDSR_API_KEY"} <= known  # the CLI's views
    assert {"IMDSR_TRITON_PYTHON", "IMDSR_LOAD_SHAPE"} <= known                  # read outside
    assert variables()["IMDSR_TILE"] == (Settings, "tile")


def test_every_option_with_a_variable_is_made_from_its_view_field() -> None:
    honoured = _click_envvars(typer.main.get_command(app))
    cli_views = {view for view in views() if issubclass(view, View) and view is not ExternalVariables}
    cli_fields = {name for name, (view, _) in variables().items() if view in cli_views}
    read: set[str] = set()
    for command, callback in _commands(app):
        for name, option, param_type, default in _env_options(callback):
            view, field = variables()[name]
            assert view in cli_views, (command, name, view)
            info = view.model_fields[field]
            assert option.help == info.description, (command, name)
            assert param_type == info.annotation, (command, name, param_type, info.annotation)
            expected = OWN_DEFAULTS.get((command.split()[-1], name), view.default(field)
                                        if not info.is_required() else inspect.Parameter.empty)
            assert default == expected, (command, name, default, expected)
            read.add(name)
    assert read == honoured  # the walk above saw every option click builds with a variable
    assert read == cli_fields  # and each command-line field is read by some option


def test_a_view_cannot_define_a_variable_twice_or_under_another_prefix() -> None:
    with pytest.raises(ValueError, match="IMDSR_TILE defined by both Settings and Clash"):
        @settings_view
        class Clash(View):
            tile: int = 64
    with pytest.raises(ValueError, match="env_prefix 'OTHER_'"):
        @settings_view
        class Prefixed(BaseModel):
            model_config = {"env_prefix": "OTHER_"}
    with pytest.raises(ValueError, match="aliased"):
        @settings_view
        class Aliased(View):
            thing: int = Field(1, alias="other")
    assert "IMDSR_THING" not in known_variables()


def test_the_launcher_defaults_are_the_supervisors() -> None:
    from triton_host.supervisor import RestartPolicy

    policy = RestartPolicy()
    assert (LauncherSettings.default("triton_max_failures"), LauncherSettings.default("triton_backoff_s"),
            LauncherSettings.default("triton_backoff_max_s"),
            LauncherSettings.default("triton_failure_window_s")) == (
        policy.max_failures, policy.backoff_s, policy.backoff_max_s, policy.failure_window_s)
    assert LauncherSettings.default("model_repository") == ROOT / "model_repository"
    with pytest.raises(KeyError, match="required"):
        PlanSettings.default("target")


def test_every_variable_the_code_reads_is_known() -> None:
    # Every IMDSR_ name written in the project's code, scripts and deployment is a view's field.
    pattern = re.compile(r"\bIMDSR_[A-Z0-9_]*[A-Z0-9]\b")
    found: set[str] = set()
    for folder in ("imdsr", "service", "training", "export", "triton_host", "bench", "loadtest"):
        for path in [*(ROOT / folder).rglob("*.py"), *(ROOT / folder).rglob("*.sh")]:
            found |= set(pattern.findall(path.read_text()))
    found |= set(pattern.findall((ROOT / "Dockerfile").read_text()))
    for path in (ROOT / "k8s").rglob("*.yaml"):
        found |= set(pattern.findall(path.read_text()))
    assert "IMDSR_GPU_CHECK_SITE" in found  # the scan read the shell script
    assert found - known_variables() == set()


def test_a_misspelt_variable_is_refused_with_the_closest_name() -> None:
    closest = r"IMDSR_TRITON_TIMEOUT \(did you mean IMDSR_TRITON_TIMEOUT_S\?\)"
    with pytest.raises(UnknownVariableError, match=closest):
        check_environment(known_variables(), {"IMDSR_TRITON_TIMEOUT": "5", "PATH": "/bin"})
    check_environment(known_variables(), {"IMDSR_TRITON_TIMEOUT_S": "5", "IMDSR_TRITON_PYTHON": "3.11"})


def test_the_command_line_stops_before_any_command() -> None:
    result = runner.invoke(app, ["model", "summary"], env={"IMDSR_TILES_INFLIGHT": "4"})
    assert result.exit_code == 2
    assert "IMDSR_TILES_INFLIGHT (did you mean IMDSR_TILES_IN_FLIGHT?)" in result.output
    ok = runner.invoke(app, ["model", "summary"], env={"IMDSR_TILES_IN_FLIGHT": "4"})
    assert ok.exit_code == 0, ok.output


def _imdsr(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command line, in a child with no IMDSR_ variable but ``env``'s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("IMDSR_")}
    return subprocess.run([sys.executable, "-m", "imdsr", *args], capture_output=True, text=True,
                          env={**base, **env}, cwd=ROOT, timeout=120)


def test_the_installed_command_refuses_too() -> None:
    proc = _imdsr("model", "summary", env={"IMDSR_DEFAULT_MODLE": "c4"})
    assert proc.returncode == 2
    assert "IMDSR_DEFAULT_MODLE (did you mean IMDSR_DEFAULT_MODEL?)" in proc.stderr


def test_the_environment_configures_export_plans_under_its_options(tmp_path: Path) -> None:
    # What the build-plans initContainer does (k8s/tensorrt-plans): no option, only variables.
    env = {"IMDSR_TARGET": "gpu", "IMDSR_VARIANTS": "c4", "IMDSR_ONNX_DIR": str(tmp_path / "onnx"),
           "IMDSR_PLAN_CACHE": str(tmp_path / "cache"), "IMDSR_REPO_DIR": str(tmp_path / "repo"),
           "IMDSR_PLANS_DRY_RUN": "1"}
    proc = _imdsr("export", "plans", env=env)
    assert proc.returncode == 2
    assert "dry run" in proc.stderr  # IMDSR_PLANS_DRY_RUN: no TensorRT needed here
    assert f"missing ONNX for c4: {tmp_path / 'onnx' / 'imdeception_c4.onnx'}" in proc.stderr
    # an option beats its variable
    proc = _imdsr("export", "plans", "--variants", "c16nla", "--onnx-dir", str(tmp_path), env=env)
    assert f"missing ONNX for c16nla: {tmp_path / 'imdeception_c16nla.onnx'}" in proc.stderr
    proc = _imdsr("export", "plans", env={**env, "IMDSR_TARGET": "cpu"})
    assert proc.returncode == 2 and "target must be gpu or jetson, not 'cpu'" in proc.stderr


def test_the_environment_configures_the_launcher_under_its_options(tmp_path: Path) -> None:
    # A repository that does not exist: the supervisor refuses it before starting any Triton.
    missing = tmp_path / "no-repository"
    env = {"IMDSR_MODEL_REPOSITORY": str(missing), "IMDSR_TRITON_MAX_FAILURES": "7",
           "IMDSR_TRITON_FAILURE_WINDOW_S": "42"}
    proc = _imdsr("serve", env=env)
    assert proc.returncode == 1, proc.stderr
    assert f"starting Triton on {missing} (restarted when it dies; gives up after 7 failures " \
           "within 42 s)" in proc.stdout
    assert f"model repository {missing} does not exist" in proc.stderr
    proc = _imdsr("serve", "--triton-max-failures", "3", env=env)
    assert "gives up after 3 failures within 42 s" in proc.stdout
    proc = _imdsr("serve", env={**env, "IMDSR_TRITON_MAX_FAILURES": "0"})  # the field's ge=1
    assert proc.returncode == 2 and "IMDSR_TRITON_MAX_FAILURES" in proc.stderr
