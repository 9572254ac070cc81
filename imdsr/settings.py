"""The one settings model: every ``IMDSR_`` environment variable is a field of one of its views.

A view is the group of variables one part of the system reads: the gateway's pydantic-settings
``Settings`` (``service/settings.py``, registered there because the gateway owns it), and the views
below, which the command line's options are made from: ``View.option`` gives the variable, help
and bounds of a field, ``View.default`` its default, and tests/unit/test_environment.py holds each
parameter's type to the field's, so each variable is defined once. Click reads the environment for
those options, so precedence stays command-line option > environment > default, and ``--help``
names each variable. They are plain pydantic models rather than pydantic-settings ones because
the export image (``.[export]``) and the base install have pydantic but not pydantic-settings, and
``imdsr export plans`` is configured by environment there (k8s/tensorrt-plans).

``imdsr`` refuses an ``IMDSR_`` variable that no view defines (``imdsr/environment.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import typer
from annotated_types import Ge, Gt, Le, Lt

# Every command line module imports this one, so `imdsr --help` now imports pydantic: 0.59 -> 0.66 s
# (best of 7, the 2-core CPU under load); any other command imported it already, for the
# environment check.
from pydantic import BaseModel, ConfigDict, Field

PREFIX = "IMDSR_"

# The committed CPU repository (this checkout's, or the installed package's sibling, as
# triton_host/ is): what `imdsr triton` and `imdsr serve` serve unless told otherwise.
COMMITTED_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"

ViewT = TypeVar("ViewT", bound=type[BaseModel])

_VIEWS: dict[str, type[BaseModel]] = {}  # module.qualname -> view, in registration order


def variable(field: str) -> str:
    """The environment variable of a view's field: ``IMDSR_`` + its name in capitals."""
    return f"{PREFIX}{field}".upper()


def settings_view(cls: ViewT) -> ViewT:
    """Register ``cls`` as a view of the settings: each of its fields is the variable ``IMDSR_`` +
    its name. Refuses a second definition of a variable another view holds."""
    prefix = cls.model_config.get("env_prefix", PREFIX)
    if prefix != PREFIX:
        raise ValueError(f"{cls.__name__}: env_prefix {prefix!r}, not {PREFIX!r}")
    aliased = [name for name, f in cls.model_fields.items() if f.validation_alias or f.alias]
    if aliased:  # pydantic-settings would read the alias, not the name the check knows
        raise ValueError(f"{cls.__name__}: aliased fields {aliased}")
    key = f"{cls.__module__}.{cls.__qualname__}"
    for other_key, other in _VIEWS.items():
        clash = sorted(set(_names(cls)) & set(_names(other)))
        if clash and other_key != key:  # the same class again is a module reloaded
            raise ValueError(f"{', '.join(clash)} defined by both {other.__name__} and "
                             f"{cls.__name__}: one definition per variable")
    _VIEWS[key] = cls
    return cls


def views() -> tuple[type[BaseModel], ...]:
    """Every registered view (the gateway's once ``service.settings`` is imported)."""
    return tuple(_VIEWS.values())


def variables() -> dict[str, tuple[type[BaseModel], str]]:
    """Every variable of every registered view -> (view, field)."""
    return {name: (view, field) for view in _VIEWS.values() for name, field in _names(view).items()}


def _names(view: type[BaseModel]) -> dict[str, str]:
    return {variable(field): field for field in view.model_fields}


class View(BaseModel):
    """A view the command line reads: its options are made from the fields."""

    # Built when first validated, not at import: the options need only the fields, and building
    # the five views' validators cost `imdsr --help` about 30 ms (2-core CPU, -X importtime).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def option(cls, field: str, *param_decls: str) -> Any:
        """The ``typer.Option`` of ``field``: its variable, help and bounds (``ge``/``le``). The
        parameter's default is ``default(field)`` and its type the field's (tests check both)."""
        info = cls.model_fields[field]
        bounds: dict[str, Any] = {}
        for rule in info.metadata:
            if isinstance(rule, Gt | Lt):  # click's ranges are closed
                raise TypeError(f"{cls.__qualname__}.{field}: give the bound as ge/le")
            if isinstance(rule, Ge):
                bounds["min"] = rule.ge
            elif isinstance(rule, Le):
                bounds["max"] = rule.le
        return typer.Option(*param_decls, envvar=variable(field), help=info.description, **bounds)

    @classmethod
    def default(cls, field: str) -> Any:
        """The default of ``field`` (a required field has none: its option is required)."""
        info = cls.model_fields[field]
        if info.is_required():
            raise KeyError(f"{cls.__qualname__}.{field} is required: it has no default")
        return info.get_default(call_default_factory=True)


@settings_view
class LauncherSettings(View):
    """``imdsr triton`` and ``imdsr serve``: what Triton serves and how ``serve`` supervises it
    (``triton_host.supervisor.RestartPolicy`` takes its defaults from here)."""

    model_repository: Path = Field(COMMITTED_REPOSITORY,
                                   description="model repository (default: the committed one)")
    triton_max_failures: int = Field(
        5, ge=1, description="give up (exit 1) at this many Triton failures within the window")
    triton_failure_window_s: float = Field(
        300.0, ge=0.001, description="seconds over which Triton failures are counted")
    triton_backoff_s: float = Field(
        1.0, ge=0.0, description="seconds before restarting a dead Triton, doubled at each failure "
                                 "within the window")
    triton_backoff_max_s: float = Field(30.0, ge=0.0, description="longest wait before a restart")


@settings_view
class PlanSettings(View):
    """``imdsr export plans`` (the build-plans initContainer of the gpu and jetson deployments,
    configured by environment in k8s/), and the builder and GPU that ``export trt`` and ``bench
    gpu`` share with it."""

    target: str = Field(description="gpu | jetson")
    variants: str = Field("c16nla,c4", description="comma list")
    onnx_dir: Path = Field(Path("/opt/imdsr/onnx"), description="holds imdeception_<variant>.onnx")
    plan_cache: Path = Field(Path("/var/cache/imdsr/plans"),
                             description="plan cache root (a persistent volume)")
    repo_dir: Path = Field(Path("/models/repo"), description="model repository to write (replaced whole)")
    serving_config: Path | None = Field(None, description="serving TOML (default: export/serving.toml)")
    precision: str | None = Field(
        None, description="fp16 | fp32 (default: the target's fp16 in the serving config)")
    # The plans job's builder; `imdsr export trt`, a build by hand, defaults to the Python API.
    plan_builder: str = Field(
        "trtexec", description="api (TensorRT's Python API) | trtexec (the TensorRT container's own binary)")
    gpu_name: str | None = Field(
        None, description="the GPU to plan for: overrides detection (bench gpu: where none is detected)")
    gpu_cc: str | None = Field(None, description="its compute capability, e.g. 8.9 (as --gpu-name)")
    plans_dry_run: bool = Field(
        False, description="everything but the TensorRT build: placeholder plans under a key of their own")


@settings_view
class ClientSettings(View):
    """``imdsr upscale``, the HTTP client."""

    api_key: str | None = Field(None, description="sent as X-API-Key (gateways with IMDSR_API_KEYS)")


@settings_view
class BenchSettings(View):
    """``imdsr bench``."""

    bsd100: Path | None = Field(None, description="BSD100 HR images (default: data/standard/bsd100, else "
                                                  ".whl/bsd100, else the five scikit-image photos)")


@settings_view
class ExternalVariables(View):
    """Variables read straight from the environment by code that cannot import this module or has
    no option to give them; each description names its reader. Unset: the reader's own default."""

    triton_site_packages: str | None = Field(None, description=(
        "the launcher's site-packages for the Python-backend stub, which ignores PYTHONPATH "
        "(set by triton_host/install.py, read by triton_host/python_backend/model.py)"))
    triton_python: str | None = Field(None, description=(
        "the launcher's Python version, checked by the stub (triton_host/python_backend/model.py)"))
    load_scenarios: str | None = Field(None, description=(
        "Locust's scenarios, comma list; its command line has no room for ours (loadtest/locustfile.py)"))
    load_shape: str | None = Field(None, description="constant | step (loadtest/locustfile.py)")
    load_step_s: float | None = Field(None, description="seconds per added user (loadtest/locustfile.py)")
    gpu_check_site: str | None = Field(None, description=(
        "where bench/gpu_check.sh installs the carried wheels"))
    gpu_check_stub: str | None = Field(None, description=(
        "where bench/gpu_check.sh unpacks the stub's site-packages"))
    gpu_check_stub_site: str | None = Field(None, description=(
        "bench/gpu_check.sh to bench/gpu_check.py: site-packages put first for the stub"))
    gpu_check_carry: str | None = Field(None, description=(
        "bench/gpu_check.sh to bench/gpu_check.py: what it installed, one line"))
    update_screenshot: str | None = Field(None, description=(
        "rewrite docs/web_page.png (tests/integration/test_web_page.py)"))
    version: str | None = Field(None, description=(
        "a Docker build argument (Dockerfile), in the image's environment at build time"))
