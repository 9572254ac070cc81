"""The Dockerfile, checked statically: hadolint, checkov and what each image must be.

No image is built here (no Docker daemon in CI); docs/DEPLOY.md says so.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.deploy_tools import ROOT, checkov_scan, run, tool

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

# Images people deploy, and the stage each one is.
SHIPPED = ("gateway", "triton-cpu", "triton", "triton-jetson", "export", "export-jetson")
OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses", "source")
# (NGC release, flavour) -> the full TensorRT build its tritonserver and tensorrt containers ship
# (NVIDIA's Frameworks Support Matrix / container release notes). A plan loads only under the exact
# build that made it. Moving to another release: add its row from NVIDIA's notes, never guess.
NGC_TENSORRT = {("24.10", "py3"): "10.5.0.18", ("24.08", "py3-igpu"): "10.3.0.26"}
# Which export image builds the plans a Triton image serves, and the serving.toml section for it.
PLAN_BUILDERS = {"export": ("triton", "gpu"), "export-jetson": ("triton-jetson", "jetson")}
SERVING_COPIES = (ROOT / "export" / "serving.toml", ROOT / "k8s" / "base" / "serving.toml",
                  ROOT / "k8s" / "overlays" / "jetson" / "serving.toml")
TRTEXEC_DIRS = ("/usr/src/tensorrt/bin", "/opt/tensorrt/bin")


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


def ngc_tag(image: str) -> tuple[str, str]:
    """nvcr.io/nvidia/<name>:24.08-py3-igpu -> ("24.08", "py3-igpu")."""
    release, _, flavour = image.rsplit(":", 1)[1].partition("-")
    return release, flavour


def stage_env(name: str) -> dict[str, str]:
    """ENV of ``name`` and the stages it derives from (later values win)."""
    env: dict[str, str] = {}
    for line in final_lines(name):
        if line.startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


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
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", resolve_base(STAGES["triton"]))
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3-igpu",
                        resolve_base(STAGES["triton-jetson"]))
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3", resolve_base(STAGES["export"]))
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorrt:\d\d\.\d\d-py3-igpu",
                        resolve_base(STAGES["export-jetson"]))


@pytest.mark.parametrize("builder", PLAN_BUILDERS)
def test_plans_are_built_by_the_tensorrt_of_the_triton_release(builder: str) -> None:
    """Export image = TensorRT container of the Triton image's release and flavour (one TensorRT build)."""
    triton, _ = PLAN_BUILDERS[builder]
    assert ngc_tag(resolve_base(STAGES[builder])) == ngc_tag(resolve_base(STAGES[triton])), (
        f"{builder} ({resolve_base(STAGES[builder])}) and {triton} ({resolve_base(STAGES[triton])}) "
        "come from different NGC releases: their TensorRT builds differ and plans will not load")


@pytest.mark.parametrize("path", SERVING_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_tensorrt_versions_agree_with_triton_and_the_serving_config(path: Path) -> None:
    """serving.toml names, per target, the full TensorRT build its Triton and export images ship."""
    serving = tomllib.loads(path.read_text())
    for builder, (triton, section) in PLAN_BUILDERS.items():
        tag = ngc_tag(resolve_base(STAGES[triton]))
        assert tag in NGC_TENSORRT, (
            f"{triton} uses NGC {tag}: add the TensorRT build it ships to NGC_TENSORRT (from NVIDIA's notes)")
        wanted = serving.get(section, {}).get("tensorrt_version")
        assert wanted is not None, f"{path}: [{section}] tensorrt_version is missing"
        assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", wanted), (
            f"{path}: [{section}] tensorrt_version = {wanted!r}: the full build (e.g. 10.5.0.18), "
            "since plans load only under the exact build that made them")
        assert wanted == NGC_TENSORRT[tag], (
            f"{path}: [{section}] tensorrt_version = {wanted}, but {triton} and {builder} "
            f"(NGC {'-'.join(tag)}) ship TensorRT {NGC_TENSORRT[tag]}")


def test_jetson_targets_orin_only() -> None:
    """JetPack 6 (the igpu images) runs on Orin (8.7) only; no Xavier (7.2) plans are asked for."""
    for path in SERVING_COPIES:
        serving = tomllib.loads(path.read_text())
        assert serving["jetson"]["compute_capabilities"] == ["8.7"], path


@pytest.mark.parametrize("builder", PLAN_BUILDERS)
def test_export_images_build_with_their_containers_trtexec(builder: str) -> None:
    """No TensorRT wheel: the container's trtexec builds plans; Python 3.11 + CPU torch run the CLI."""
    stage = STAGES[builder]
    text = " ".join(final_lines(builder))
    assert not re.search(r"tensorrt[-_a-z0-9]*==", text, re.IGNORECASE), (
        f"{builder} pip-installs a TensorRT wheel: its build would differ from Triton's")
    assert "TENSORRT_VERSION" not in text and "export-venv" not in STAGES
    env = stage_env(builder)
    assert env["IMDSR_PLAN_BUILDER"] == "trtexec"
    assert env["IMDSR_ONNX_DIR"] == "/opt/imdsr/onnx"
    path = env["PATH"].split(":")
    assert path[0] == "/opt/venv/bin" and all(d in path for d in TRTEXEC_DIRS), env["PATH"]
    runs = " ".join(stage.instructions("RUN"))
    assert "python3.11 -m venv /opt/venv" in runs
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in runs and '".[export]"' in runs
    assert stage_arg_default(builder, "TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    assert stage_arg_default(builder, "TORCH_VERSION") == stage_arg_default("onnx", "TORCH_VERSION")
    assert "--from=onnx /onnx/ /opt/imdsr/onnx/" in stage.instructions("COPY")
    assert "useradd --system --uid 10001" in runs and stage.instructions("USER")[-1] == "10001:10001"


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


def _argv(instruction: str) -> list[str]:
    """An ENTRYPOINT/CMD's words: exec form (JSON) or shell form."""
    try:
        return json.loads(instruction)
    except ValueError:
        return shlex.split(instruction)


def image_entrypoint(name: str) -> list[str]:
    """The ENTRYPOINT stage ``name`` ends with (inherited from its bases)."""
    lines = final_lines(name)
    entry = [_argv(line[len("ENTRYPOINT "):]) for line in lines if line.startswith("ENTRYPOINT ")]
    return entry[-1] if entry else []


def test_export_images_run_nvidia_s_entrypoint_first() -> None:
    """NGC's nvidia_entrypoint.sh sets up CUDA forward compatibility; our export images keep it
    in front of `imdsr`, so the plan builder gets it whatever arguments a pod passes."""
    for name in ("export", "export-jetson"):
        assert image_entrypoint(name) == ["/opt/nvidia/nvidia_entrypoint.sh", "imdsr"], name


def test_imdsr_servers_in_images_listen_on_every_interface() -> None:
    """`imdsr gateway|triton|serve` bind 127.0.0.1 unless told otherwise: an image must say 0.0.0.0."""
    servers = []
    for name in STAGES:
        lines = final_lines(name)
        entry = [_argv(line[len("ENTRYPOINT "):]) for line in lines if line.startswith("ENTRYPOINT ")]
        cmd = [_argv(line[len("CMD "):]) for line in lines if line.startswith("CMD ")]
        argv = (entry[-1] if entry else []) + (cmd[-1] if cmd else [])
        if len(argv) > 1 and Path(argv[0]).name == "imdsr" and argv[1] in ("gateway", "triton", "serve"):
            pairs = list(zip(argv, argv[1:], strict=False))
            assert ("--host", "0.0.0.0") in pairs or "--host=0.0.0.0" in argv, f"{name}: {argv}"
            servers.append(name)
    assert {"gateway", "triton-cpu"} <= set(servers), servers


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


def test_nvidia_triton_images_serve_the_cpu_repository_on_native_backends() -> None:
    _, stages = parse()
    native = stages["native-repo"]
    runs = " ".join(native.instructions("RUN"))
    assert "imdsr export native-repo model_repository -o /native/openvino --runtime openvino" in runs
    assert "imdsr export native-repo model_repository -o /native/onnxruntime --runtime onnxruntime" in runs
    assert "pip install ." in runs and "[" not in runs.split("pip install .")[1].split()[0]  # base deps
    for stage, runtime in (("triton", "openvino"), ("triton-jetson", "onnxruntime")):
        copies = stages[stage].instructions("COPY")
        assert f"--from=native-repo --chown=0:0 /native/{runtime}/ /opt/imdsr/model_repository/" in copies
        assert not any("pip install" in r for r in stages[stage].instructions("RUN")), stage
