"""The Dockerfile, checked statically: hadolint, checkov and what each image must be.

No image is built here (no Docker daemon in CI); docs/DEPLOY.md says so.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field

import pytest

from tests.deploy_tools import ROOT, checkov_scan, run, tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# Images people deploy, and the stage each one is.
SHIPPED = ("gateway", "triton-cpu", "triton", "triton-jetson", "export", "export-jetson")
OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses", "source")
# NGC release -> the TensorRT minor it ships (plans load only under the same minor).
NGC_TENSORRT = {"24.08": "10.3", "24.10": "10.5"}


@dataclass
class Stage:
    name: str
    base: str
    lines: list[str] = field(default_factory=list)

    def instructions(self, keyword: str) -> list[str]:
        return [line[len(keyword):].strip() for line in self.lines
                if line.upper().startswith(keyword + " ")]


def _logical_lines(text: str) -> list[str]:
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    return out


def parse() -> tuple[dict[str, str], dict[str, Stage]]:
    """(global ARG defaults, stages by name) of the Dockerfile."""
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in _logical_lines(DOCKERFILE.read_text()):
        keyword = line.split()[0].upper()
        if keyword == "FROM":
            words = [w for w in line.split()[1:] if not w.startswith("--platform")]
            assert len(words) == 3 and words[1].upper() == "AS", f"unnamed stage: {line}"
            current = Stage(words[2], words[0])
            stages[current.name] = current
        elif current is None and keyword == "ARG":
            name, _, default = line.split(None, 1)[1].partition("=")
            args[name] = default.strip('"')
        elif current is not None:
            current.lines.append(line)
    return args, stages


ARGS, STAGES = parse()


def resolve_base(stage: Stage) -> str:
    base = stage.base
    match = re.fullmatch(r"\$\{?(\w+)\}?", base)
    return ARGS[match.group(1)] if match else base


def final_lines(name: str) -> list[str]:
    """Instructions of ``name`` and of the stages it derives from (FROM <stage>)."""
    stage = STAGES[name]
    inherited = final_lines(stage.base) if stage.base in STAGES else []
    return inherited + stage.lines


def stage_arg_default(stage: str, arg: str) -> str:
    for line in STAGES[stage].lines:
        if line.startswith(f"ARG {arg}="):
            return line.split("=", 1)[1].strip('"')
    raise KeyError(f"{stage}: no ARG {arg}")


def test_hadolint_passes() -> None:
    proc = run([tool("hadolint"), "--no-color", str(DOCKERFILE)], check=False)
    assert proc.returncode == 0, f"hadolint:\n{proc.stdout}{proc.stderr}"


def test_checkov_dockerfile_has_no_unexplained_findings() -> None:
    report = checkov_scan(["--file", str(DOCKERFILE), "--framework", "dockerfile"])
    failed = [(c["check_id"], c["file_line_range"]) for c in report["results"]["failed_checks"]]
    assert not failed, f"checkov failures: {failed}"
    docs = (ROOT / "docs" / "DEPLOY.md").read_text()
    for check in report["results"]["skipped_checks"]:
        assert check["check_result"].get("suppress_comment", "").strip(), check["check_id"]
        assert check["check_id"] in docs, f"{check['check_id']} skipped but not listed in docs/DEPLOY.md"


def test_every_shipped_target_exists() -> None:
    assert set(SHIPPED) <= set(STAGES), sorted(set(SHIPPED) - set(STAGES))


@pytest.mark.parametrize("arg", [a for a in ARGS if a.endswith("_IMAGE")])
def test_base_images_are_pinned(arg: str) -> None:
    image = ARGS[arg]
    assert ":" in image.rsplit("/", 1)[-1], f"{arg}={image} has no tag"
    tag = image.rsplit(":", 1)[1]
    assert tag != "latest" and re.search(r"\d", tag), f"{arg}={image}: not a pinned tag"


def test_every_stage_starts_from_a_pinned_arg_or_another_stage() -> None:
    for stage in STAGES.values():
        assert stage.base in STAGES or re.fullmatch(r"\$\{\w+\}", stage.base), (
            f"stage {stage.name} starts from {stage.base}: use a pinned ARG")


def test_base_images_are_the_expected_families() -> None:
    assert resolve_base(STAGES["gateway"]).startswith("python:3.11")
    assert resolve_base(STAGES["export"]).startswith("python:3.11")
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", resolve_base(STAGES["triton"]))
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3-igpu",
                        resolve_base(STAGES["triton-jetson"]))
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3-igpu",
                        resolve_base(STAGES["export-jetson"]))


def test_tensorrt_versions_agree_with_triton_and_the_serving_config() -> None:
    """A plan built by one TensorRT minor does not load in another: export == Triton == serving."""
    serving = tomllib.loads((ROOT / "export" / "serving.toml").read_text())
    gpu_release = resolve_base(STAGES["triton"]).split(":")[1].split("-")[0]
    jetson_release = resolve_base(STAGES["triton-jetson"]).split(":")[1].split("-")[0]
    trt_release = resolve_base(STAGES["export-jetson"]).split(":")[1].split("-")[0]
    assert jetson_release == trt_release, "export-jetson and triton-jetson from different NGC releases"
    export_trt = stage_arg_default("export", "TENSORRT_VERSION")
    assert export_trt == stage_arg_default("export-venv", "TENSORRT_VERSION")
    assert ".".join(export_trt.split(".")[:2]) == NGC_TENSORRT[gpu_release], (
        f"export builds with TensorRT {export_trt}, Triton {gpu_release} runs {NGC_TENSORRT[gpu_release]}")
    gpu_serving = serving.get("gpu", {}).get("tensorrt_version")
    jetson_serving = serving.get("jetson", {}).get("tensorrt_version")
    if gpu_serving:
        assert gpu_serving == NGC_TENSORRT[gpu_release], "serving.toml [gpu] tensorrt_version"
    if jetson_serving:
        assert jetson_serving == NGC_TENSORRT[jetson_release], "serving.toml [jetson] tensorrt_version"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_images_run_unprivileged_with_labels_and_healthcheck(name: str) -> None:
    lines = final_lines(name)
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users, f"{name}: no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 10000, f"{name}: USER {users[-1]} (want a numeric uid >= 10000)"
    labels = " ".join(line for line in lines if line.startswith("LABEL "))
    for key in OCI_LABELS:
        assert f"org.opencontainers.image.{key}=" in labels, f"{name}: OCI label {key} missing"
    health = [line for line in lines if line.startswith("HEALTHCHECK ")]
    assert health, f"{name}: no HEALTHCHECK"
    if name.startswith("export"):
        assert health[-1] == "HEALTHCHECK NONE", f"{name} is a batch image"
    else:
        assert "CMD" in health[-1] and ("/healthz" in health[-1] or "/v2/health/ready" in health[-1])


@pytest.mark.parametrize("name", SHIPPED)
def test_version_label_defaults_to_the_project_version(name: str) -> None:
    defaults = [line.split("=", 1)[1] for line in final_lines(name) if line.startswith("ARG IMDSR_VERSION=")]
    assert defaults and defaults[-1] == PROJECT_VERSION


def test_gateway_image_carries_only_the_serve_extra_and_never_torch() -> None:
    venv_stage = STAGES["gateway"]
    copies = venv_stage.instructions("COPY")
    assert any("--from=serve-venv" in c for c in copies), copies
    installs = " ".join(STAGES["serve-venv"].instructions("RUN"))
    assert '".[serve]"' in installs and "torch==" not in installs and "[export]" not in installs
    assert "torch leaked" in installs  # the build fails if a dependency pulls torch in
    for name in ("gateway", "triton-cpu"):
        text = " ".join(final_lines(name))
        assert "torch==" not in text and "[export]" not in text, name


def test_ports_and_commands() -> None:
    gateway = " ".join(STAGES["gateway"].lines)
    assert "EXPOSE 8080" in gateway and '"gateway", "--host", "0.0.0.0", "--port", "8080"' in gateway
    for name in ("triton", "triton-jetson", "triton-cpu"):
        assert "EXPOSE 8000 8001 8002" in STAGES[name].lines, name


def _dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; '!' re-includes (simplified fnmatch)."""
    from fnmatch import fnmatch

    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(fnmatch(p, pat) or fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_the_context_small_and_complete() -> None:
    patterns = _dockerignore_patterns()
    assert patterns[0] == "*", "allow-list .dockerignore expected"
    for excluded in (".venv/bin/python", ".git/HEAD", ".venv-tools/checkov", "k8s/base/x.yaml",
                     "imdsr/__pycache__/cli.cpython-311.pyc", "data/div2k/0001.png"):
        assert _ignored(excluded, patterns), f"{excluded} would be sent to the daemon"
    sources: set[str] = set()
    for stage in STAGES.values():
        for copy in stage.instructions("COPY"):
            words = [w for w in shlex.split(copy) if not w.startswith("--")]
            if any(w.startswith("--from") for w in shlex.split(copy)):
                continue
            sources.update(words[:-1])
    assert sources, "no COPY from the build context?"
    for src in sources:
        src = src.rstrip("*").rstrip("/")
        assert not _ignored(src + "/x" if "." not in src else src, patterns), f"{src} is excluded"
        assert (ROOT / src).exists() or src == "README.md", f"COPY source {src} does not exist"
