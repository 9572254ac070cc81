"""What the gpu and jetson overlays need for a first start that works, checked on the manifests
that the real ``kubectl kustomize`` renders and on docs/DEPLOY.md, which must say the same:

- the plan cache claim of the gpu overlay names its ReadWriteMany storage class in one place, the
  one setting an operator must make theirs, and DEPLOY.md tells them so and what the volume needs;
- the plan builder runs as the uid/gid that DEPLOY.md tells storage admins to grant;
- Jetson means Orin (compute capability 8.7) on JetPack 6 / L4T r36, with ``nvidia.com/gpu`` from
  the standalone k8s-device-plugin (the GPU Operator does not support Jetson), and the Jetson pod
  selects nodes only by what a Jetson node carries.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_deploy_k8s import K8S, configmap_data, container, find, one, pod_spec, render
from tests.support.deploy_tools import ROOT

GPU = K8S / "overlays" / "gpu"
JETSON = K8S / "overlays" / "jetson"
RWX_PATCH = GPU / "plan-cache-rwx.yaml"
DEPLOY_MD = ROOT / "docs" / "DEPLOY.md"
PLAN_CACHE = "imdsr-plan-cache"
BUILDER_ID = 10001  # uid and gid of every imdsr container (Dockerfile USER 10001:10001)
ORIN_CC = "8.7"
# Labels that the GPU Operator / GPU feature discovery put on data-centre GPU nodes. Neither
# supports Jetson, so a Jetson pod that requires one of them stays Pending for ever.
GPU_OPERATOR_LABELS = re.compile(r"^(nvidia\.com/gpu\.|nvidia\.com/cuda\.|feature\.node\.kubernetes\.io/)")
# Where DEPLOY.md sends the reader for RWX classes; each must be named in the plan-cache section.
RWX_EXAMPLES = ("EFS", "Filestore", "Azure Files", "CephFS", "nfs-subdir-external-provisioner")


@pytest.fixture(scope="module")
def gpu() -> list[dict]:
    return render(GPU)


@pytest.fixture(scope="module")
def jetson() -> list[dict]:
    return render(JETSON)


def storage_class_setting() -> str:
    """The class name the gpu overlay's claim patch sets (the one setting)."""
    (doc,) = [d for d in yaml.safe_load_all(RWX_PATCH.read_text()) if d]
    assert doc["kind"] == "PersistentVolumeClaim" and doc["metadata"]["name"] == PLAN_CACHE
    name = doc["spec"].get("storageClassName")
    assert isinstance(name, str) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), (
        f"{RWX_PATCH}: storageClassName {name!r} is not a StorageClass name")
    return name


def md_section(heading: str, raw: bool = False) -> str:
    """One DEPLOY.md section (up to the next heading of the same or a higher level), with its
    whitespace normalised unless ``raw``."""
    text = DEPLOY_MD.read_text()
    level = heading.split()[0]
    start = text.find(f"\n{heading}\n")
    assert start >= 0, f"docs/DEPLOY.md has no section {heading!r}"
    body = text[start + len(heading) + 2:]
    # a heading line: 1..level '#' at a line start, outside fenced code blocks
    fences = [m.start() for m in re.finditer(r"^```", body, re.MULTILINE)]
    stop = next((m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", body, re.MULTILINE)
                 if sum(f < m.start() for f in fences) % 2 == 0), len(body))
    return body[:stop] if raw else " ".join(body[:stop].split())


def comments(path: Path) -> str:
    """A YAML file's comment lines as one whitespace-normalised string."""
    lines = [line.strip()[1:] for line in path.read_text().splitlines() if line.strip().startswith("#")]
    return " ".join(" ".join(lines).split())


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def without_comments(path: Path) -> str:
    return "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())


# --------------------------------------------------------------------------- plan cache storage
def test_gpu_plan_cache_claim_is_rwx_on_the_named_class(gpu: list[dict]) -> None:
    claim = one(gpu, "PersistentVolumeClaim", PLAN_CACHE)["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"]
    # Rendered as set in the patch: nothing else (a replacement, another patch) rewrites it.
    assert claim.get("storageClassName") == storage_class_setting()
    # We name a class; creating one (cluster-scoped, provider-specific) is the operator's job.
    assert not find(gpu, "StorageClass")
    spec = pod_spec(gpu, "imdsr-triton")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec["volumes"]
              if "persistentVolumeClaim" in v]
    assert claims == [PLAN_CACHE]


def test_storage_class_is_one_setting_in_one_place() -> None:
    """One line to change: no other manifest sets a storage class or repeats the class name."""
    name = storage_class_setting()
    patch = str(RWX_PATCH.relative_to(ROOT))
    setters = {str(p.relative_to(ROOT)): without_comments(p).count("storageClassName:")
               for p in manifest_files()}
    assert {path: n for path, n in setters.items() if n} == {patch: 1}, (
        f"the plan cache's storage class must be set once, in {patch}")
    word = re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])")
    uses = {str(p.relative_to(ROOT)): len(word.findall(without_comments(p))) for p in manifest_files()}
    assert {path: n for path, n in uses.items() if n} == {patch: 1}
    # and the overlay's own notes point at it
    kustomization = comments(GPU / "kustomization.yaml")
    assert RWX_PATCH.name in kustomization and "storageClassName" in kustomization
    assert "docs/DEPLOY.md" in comments(RWX_PATCH) and name in comments(RWX_PATCH)


def test_jetson_plan_cache_uses_the_default_class(jetson: list[dict]) -> None:
    claim = one(jetson, "PersistentVolumeClaim", PLAN_CACHE)["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim  # the device's default class (k3s local-path)


def test_deploy_md_tells_the_reader_to_set_the_storage_class() -> None:
    section = md_section("### The plan cache volume")
    name = storage_class_setting()
    assert f"storageClassName: {name}" in section and str(RWX_PATCH.relative_to(ROOT)) in section
    assert "ReadWriteMany" in section and "Pending" in section
    assert f"uid **{BUILDER_ID}**" in section and f"gid **{BUILDER_ID}**" in section
    assert "fsGroup" in section and re.search(r"ignore `?fsGroup", section)
    missing = [example for example in RWX_EXAMPLES if example not in section]
    assert not missing, f"DEPLOY.md's plan-cache section names no {missing}"
    # the example StorageClass in the section is a valid one, with the name the claim asks for
    # and the builder's uid/gid as owner
    blocks = re.findall(r"```yaml\n(.*?)```", md_section("### The plan cache volume", raw=True), re.DOTALL)
    classes = [d for block in blocks for d in yaml.safe_load_all(block) if d and d["kind"] == "StorageClass"]
    assert classes and all(c["metadata"]["name"] == name for c in classes)
    assert all(c["parameters"]["uid"] == c["parameters"]["gid"] == str(BUILDER_ID) for c in classes)
    assert RWX_PATCH.name in md_section("### Which overlay")


@pytest.mark.parametrize("overlay", ["gpu", "jetson"])
def test_plan_builder_runs_as_the_id_deploy_md_names(overlay: str, gpu: list[dict],
                                                     jetson: list[dict]) -> None:
    objs = {"gpu": gpu, "jetson": jetson}[overlay]
    spec = pod_spec(objs, "imdsr-triton")
    init = container(spec, "build-plans", init=True)
    ctx = {**spec["securityContext"], **init.get("securityContext", {})}
    assert ctx["runAsUser"] == BUILDER_ID and ctx["runAsGroup"] == BUILDER_ID
    assert spec["securityContext"]["fsGroup"] == BUILDER_ID
    volumes = {v["name"]: v for v in spec["volumes"]}
    cache_mounts = [m for m in init["volumeMounts"]
                    if volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == PLAN_CACHE]
    assert len(cache_mounts) == 1 and not cache_mounts[0].get("readOnly", False)


# --------------------------------------------------------------------------- Jetson = Orin
@pytest.mark.parametrize("overlay", ["gpu", "jetson"])
def test_jetson_plans_are_for_orin_only(overlay: str, gpu: list[dict], jetson: list[dict]) -> None:
    objs = {"gpu": gpu, "jetson": jetson}[overlay]
    serving = tomllib.loads(configmap_data(objs, "imdsr-serving")["serving.toml"])
    assert serving["jetson"]["compute_capabilities"] == [ORIN_CC]


def test_jetson_overlay_says_which_device_plugin_and_jetpack() -> None:
    text = comments(JETSON / "kustomization.yaml")
    for needle in ("k8s-device-plugin", "GPU Operator does not support Jetson", "JetPack 6",
                   "(L4T) r36", "Orin", ORIN_CC, 'RuntimeClass "nvidia"'):
        assert needle in text, f"k8s/overlays/jetson/kustomization.yaml comments do not say {needle!r}"
    assert re.search(r"v0\.1[3-9]\.\d|v0\.[2-9]\d\.\d", text), "which k8s-device-plugin release is needed"
    section = md_section("### Jetson")
    for needle in ("k8s-device-plugin", "Not the GPU Operator", "JetPack 6.x = Jetson Linux (L4T) r36.x",
                   ORIN_CC, "RuntimeClass `nvidia`"):
        assert needle in section, f"DEPLOY.md's Jetson section does not say {needle!r}"


def test_jetson_triton_selects_nodes_by_what_a_jetson_carries(jetson: list[dict]) -> None:
    spec = pod_spec(jetson, "imdsr-triton")
    assert spec["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    assert spec["runtimeClassName"] == "nvidia"
    required = list(spec["nodeSelector"])
    for term in (spec.get("affinity", {}).get("nodeAffinity", {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])):
        required += [expr["key"] for expr in term.get("matchExpressions", [])]
    operator_only = [key for key in required if GPU_OPERATOR_LABELS.match(key)]
    assert not operator_only, f"Jetson nodes never get {operator_only} (no GPU Operator there)"
    assert container(spec, "triton")["resources"]["limits"]["nvidia.com/gpu"] == 1


def _required_node_keys(spec: dict) -> list[str]:
    keys = list(spec.get("nodeSelector", {}))
    for term in (spec.get("affinity", {}).get("nodeAffinity", {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])):
        keys += [expr["key"] for expr in term.get("matchExpressions", [])]
    return keys


def test_gpu_triton_needs_no_node_label_only_a_gpu(gpu: list[dict]) -> None:
    """Only the GPU Operator labels nodes nvidia.com/gpu.present; the device plugin and managed
    GPU pools do not, so a required label leaves the pod Pending there."""
    spec = pod_spec(gpu, "imdsr-triton")
    assert _required_node_keys(spec) == []
    assert container(spec, "triton")["resources"]["limits"]["nvidia.com/gpu"] == 1


@pytest.mark.parametrize(("overlay", "deadline"), [("gpu", 3600), ("jetson", 7200)])
def test_rollout_never_needs_a_spare_gpu_and_waits_for_the_first_plan_build(
        overlay: str, deadline: int, gpu: list[dict], jetson: list[dict]) -> None:
    deployment = one({"gpu": gpu, "jetson": jetson}[overlay], "Deployment", "imdsr-triton")
    strategy = deployment["spec"]["strategy"]
    if strategy["type"] == "RollingUpdate":
        assert strategy["rollingUpdate"]["maxSurge"] == 0
        assert strategy["rollingUpdate"]["maxUnavailable"] >= 1
    else:
        assert strategy["type"] == "Recreate"
    assert deployment["spec"]["progressDeadlineSeconds"] >= deadline


@pytest.mark.parametrize("overlay", ["gpu", "jetson"])
def test_gateway_starts_with_its_accelerator_s_admission_rates(
        overlay: str, gpu: list[dict], jetson: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU's measured seconds per Mpx would refuse most of a GPU's work until learnt: each
    accelerator overlay gives the gateway its own starting figures, read by the real Settings.
    An accelerator's repository publishes no rate (tests/unit/test_export_repo.py), so every
    registry variant starts from the overlay's override or its default."""
    from service.model_traits import ModelTraits, starting_rate
    from service.settings import Settings
    from training.models.registry import VARIANTS

    spec = pod_spec({"gpu": gpu, "jetson": jetson}[overlay], "imdsr-gateway")
    for e in container(spec, "gateway").get("env", []):
        monkeypatch.setenv(e["name"], e["value"])
    settings = Settings()
    for name, variant in VARIANTS.items():
        published_none = ModelTraits.from_config(variant.triton_name, {})
        assert variant.seconds_per_mpx is not None, name
        assert starting_rate(name, published_none, settings) < variant.seconds_per_mpx, (overlay, name)
    assert "rlfn" in settings.seconds_per_mpx
    assert settings.default_seconds_per_mpx < 0.3
    if overlay == "gpu":
        assert settings.triton_parallelism == 2
