"""The Kubernetes manifests, checked statically with real tools.

Every overlay is rendered by a real ``kubectl kustomize``; every core object is validated against
the Kubernetes OpenAPI schemas (``kubernetes-validate``, strict) for the oldest and a current
supported version; CRD objects (ServiceMonitor) are checked structurally; checkov scans the
rendered manifests with no failed check left unexplained; and the assertions below pin down what
matters. No cluster is involved; docs/DEPLOY.md says what that leaves unexercised.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy_tools import ROOT, checkov_scan, run, tool

K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu", "jetson")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # oldest supported, current
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
BUILD_PLANS = K8S / "tensorrt-plans" / "build_plans.py"
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
PLAN_IMAGES = {"gpu": "registry.example.com/imdsr/export",
               "jetson": "registry.example.com/imdsr/export-jetson"}
TRITON_IMAGES = {"cpu": "registry.example.com/imdsr/triton-cpu", "gpu": "registry.example.com/imdsr/triton",
                 "jetson": "registry.example.com/imdsr/triton-jetson"}



def _gateway_metrics() -> set[str]:
    """Names the gateway exports (service/metrics.py), as Prometheus sees them."""
    try:
        import prometheus_client

        from service import metrics
    except ImportError:  # no serve extra: the names as of this writing
        return {"imdsr_gateway_requests_total", "imdsr_gateway_request_duration_seconds",
                "imdsr_gateway_requests_in_flight", "imdsr_gateway_tiles_per_request",
                "imdsr_gateway_stage_duration_seconds", "imdsr_gateway_triton_infer_duration_seconds",
                "imdsr_gateway_triton_errors_total"}
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, prometheus_client.metrics.MetricWrapperBase):
            suffix = "_total" if isinstance(value, prometheus_client.Counter) else ""
            names.add(value._name + suffix)
    return names


GATEWAY_METRICS = _gateway_metrics()
# what the dashboard and the autoscaler must use at least
GATEWAY_CORE = {"imdsr_gateway_requests_total", "imdsr_gateway_request_duration_seconds",
                "imdsr_gateway_requests_in_flight", "imdsr_gateway_tiles_per_request"}
TRITON_METRICS = {"nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us",
                  "nv_inference_count", "nv_inference_exec_count", "nv_inference_request_success",
                  "nv_gpu_utilization", "nv_gpu_memory_used_bytes"}
KSM_METRICS = {"kube_deployment_status_replicas_available",
               "kube_horizontalpodautoscaler_status_desired_replicas"}


# --------------------------------------------------------------------------- rendering
def render(path: Path) -> list[dict]:
    proc = run([tool("kubectl"), "kustomize", str(path)], timeout=120)
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(K8S / "overlays" / name) for name in OVERLAYS}


def find(objs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs: list[dict], kind: str, name: str) -> dict:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(objs: list[dict], deployment: str) -> dict:
    return one(objs, "Deployment", deployment)["spec"]["template"]["spec"]


def container(spec: dict, name: str, init: bool = False) -> dict:
    items = spec.get("initContainers" if init else "containers", [])
    found = [c for c in items if c["name"] == name]
    assert len(found) == 1, f"container {name} not found"
    return found[0]


def all_containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def port_number(c: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in c.get("ports", []) if p["name"] == port]
    assert numbers, f"{c['name']} has no port named {port}"
    return numbers[0]


def configmap_data(objs: list[dict], prefix: str) -> dict[str, str]:
    maps = [o for o in objs if o["kind"] == "ConfigMap"
            and re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", o["metadata"]["name"])]
    assert len(maps) == 1, f"ConfigMap {prefix}-<hash>: found {len(maps)}"
    return maps[0]["data"]


def test_every_kustomization_renders() -> None:
    for path in (K8S / "base", K8S / "tensorrt-plans", K8S / "monitoring",
                 *(K8S / "overlays" / o for o in OVERLAYS)):
        assert render(path), path


# --------------------------------------------------------------------------- schemas
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_objects_validate_against_kubernetes_schemas(rendered: dict[str, list[dict]],
                                                          version: str) -> None:
    import kubernetes_validate

    checked = 0
    for overlay, objs in rendered.items():
        for obj in [*objs, *render(K8S / "monitoring")]:
            if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} invalid for "
                            f"Kubernetes {version}: {exc.message} at {list(exc.path)}")
            checked += 1
    assert checked >= 40


def test_crd_objects_are_well_formed(rendered: dict[str, list[dict]]) -> None:
    for overlay in ("gpu", "jetson"):
        objs = rendered[overlay]
        monitors = find(objs, "ServiceMonitor")
        assert {m["metadata"]["name"] for m in monitors} == {"imdsr-gateway", "imdsr-triton"}, overlay
        for monitor in monitors:
            assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
            assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
            labels = monitor["spec"]["selector"]["matchLabels"]
            services = [s for s in find(objs, "Service")
                        if labels.items() <= s["metadata"].get("labels", {}).items()]
            assert len(services) == 1, f"{monitor['metadata']['name']} selects {len(services)} Services"
            port_names = {p["name"] for p in services[0]["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
                assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
                assert re.fullmatch(r"\d+s", endpoint["interval"])
    # a bare kind/k3s cluster has no prometheus-operator CRDs: the cpu overlay must apply there
    assert not [o for o in rendered["cpu"] if (o["apiVersion"], o["kind"]) in CRD_KINDS]


# --------------------------------------------------------------------------- policy scan
def test_checkov_has_no_unexplained_findings(rendered: dict[str, list[dict]], tmp_path: Path) -> None:
    for overlay, objs in rendered.items():
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(objs, sort_keys=False))
    report = checkov_scan(["--directory", str(tmp_path), "--framework", "kubernetes"])
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert not failed, f"checkov failures: {failed}"
    assert report["summary"]["passed"] > 300
    docs = (ROOT / "docs" / "DEPLOY.md").read_text()
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    for check in report["results"]["skipped_checks"]:
        assert len(check["check_result"].get("suppress_comment", "")) > 20, check["check_id"]
    for check_id in skipped:
        assert check_id in docs, f"{check_id} is skipped in k8s/ but not listed in docs/DEPLOY.md"
    assert skipped <= {"CKV_K8S_43", "CKV_K8S_15"}, f"new skips need a reason in docs: {skipped}"


# --------------------------------------------------------------------------- probes, ports
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_hit_the_right_paths_and_ports(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    triton = container(pod_spec(objs, "imdsr-triton"), "triton")
    expected = {"livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready",
                "startupProbe": "/v2/health/ready"}
    for probe, path in expected.items():
        get = triton[probe]["httpGet"]
        assert get["path"] == path, (overlay, probe)
        assert port_number(triton, get["port"]) == 8000, (overlay, probe)
    gateway = container(pod_spec(objs, "imdsr-gateway"), "gateway")
    for probe, path in {"livenessProbe": "/healthz", "readinessProbe": "/readyz",
                        "startupProbe": "/healthz"}.items():
        get = gateway[probe]["httpGet"]
        assert get["path"] == path and port_number(gateway, get["port"]) == 8080, (overlay, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_expose_http_grpc_metrics(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    for name, want in (("imdsr-triton", {"http": 8000, "grpc": 8001, "metrics": 8002}),
                       ("imdsr-gateway", {"http": 8080})):
        service = one(objs, "Service", name)
        c = pod_spec(objs, name)["containers"][0]
        got = {p["name"]: p["port"] for p in service["spec"]["ports"]}
        assert got == want, (overlay, name)
        for p in service["spec"]["ports"]:
            assert port_number(c, p["targetPort"]) == want[p["name"]]
        assert service["spec"]["selector"].items() <= \
            one(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"].items()
    config = configmap_data(objs, "imdsr-gateway-config")
    assert config["IMDSR_TRITON_URL"] == "imdsr-triton:8001"  # gRPC, through the Service


# --------------------------------------------------------------------------- security
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    namespace = one(objs, "Namespace", "imdsr")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for deployment in find(objs, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        where = f"{overlay}/{deployment['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["serviceAccountName"] == deployment["metadata"]["name"], where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), where
        assert not [v for v in spec.get("volumes", []) if "hostPath" in v], where
        for c in all_containers(spec):
            ctx = c["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, (where, c["name"])
            assert ctx["readOnlyRootFilesystem"] is True, (where, c["name"])
            assert ctx["privileged"] is False, (where, c["name"])
            assert ctx["capabilities"]["drop"] == ["ALL"] and "add" not in ctx["capabilities"]
            assert ctx.get("runAsUser", spec["securityContext"].get("runAsUser", 0)) >= 10000
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (where, c["name"], kind)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_and_prometheus_reach_triton(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    deny = one(objs, "NetworkPolicy", "imdsr-default-deny-ingress")["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    policy = one(objs, "NetworkPolicy", "imdsr-triton-ingress")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "imdsr-triton"}
    triton = container(pod_spec(objs, "imdsr-triton"), "triton")
    sources = {}
    for rule in policy["ingress"]:
        assert len(rule["from"]) == 1, "each rule names exactly one peer"
        peer = rule["from"][0]
        assert "ipBlock" not in peer
        key = json.dumps(peer, sort_keys=True)
        sources[key] = {port_number(triton, p["port"]) for p in rule["ports"]}
    gateway_peer = json.dumps({"podSelector": {"matchLabels": {"app.kubernetes.io/name": "imdsr-gateway"}}},
                              sort_keys=True)
    assert sources.pop(gateway_peer) == {8000, 8001}
    ((prometheus, ports),) = sources.items()
    assert "prometheus" in prometheus and "namespaceSelector" in prometheus and ports == {8002}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_select_their_deployments(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    for name in ("imdsr-gateway", "imdsr-triton"):
        pdb = one(objs, "PodDisruptionBudget", name)["spec"]
        labels = one(objs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["selector"]["matchLabels"].items() <= labels.items()
        replicas = one(objs, "Deployment", name)["spec"]["replicas"]
        if "minAvailable" in pdb:  # never a budget that blocks every drain
            assert pdb["minAvailable"] < replicas, (overlay, name)


# --------------------------------------------------------------------------- images
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned(rendered: dict[str, list[dict]], overlay: str) -> None:
    images = {c["image"] for d in find(rendered[overlay], "Deployment")
              for c in all_containers(d["spec"]["template"]["spec"])}
    assert images
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image}: no tag"
        assert tag == PROJECT_VERSION, f"{image}: our images carry the project version {PROJECT_VERSION}"
    triton = container(pod_spec(rendered[overlay], "imdsr-triton"), "triton")
    assert triton["image"].rpartition(":")[0] == TRITON_IMAGES[overlay]


# --------------------------------------------------------------------------- GPUs and plans
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_resources_only_where_there_are_gpus(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    text = yaml.safe_dump_all(objs)
    if overlay == "cpu":
        assert "nvidia.com/gpu" not in text and "runtimeClassName" not in text
        return
    triton = pod_spec(objs, "imdsr-triton")
    assert triton["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container(triton, "build-plans", init=True)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in triton["tolerations"])
    gateway = pod_spec(objs, "imdsr-gateway")
    assert "nvidia.com/gpu" not in json.dumps(gateway)
    if overlay == "gpu":
        assert triton["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    else:
        assert triton["runtimeClassName"] == "nvidia"
        assert triton["nodeSelector"]["kubernetes.io/arch"] == "arm64"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_plans_are_built_on_the_node_where_plans_are_needed(rendered: dict[str, list[dict]],
                                                            overlay: str) -> None:
    objs = rendered[overlay]
    spec = pod_spec(objs, "imdsr-triton")
    triton = container(spec, "triton")
    if overlay == "cpu":
        assert "initContainers" not in spec and not find(objs, "PersistentVolumeClaim")
        assert "/opt/imdsr/model_repository" in triton["args"]
        return
    init = container(spec, "build-plans", init=True)
    assert init["image"].rpartition(":")[0] == PLAN_IMAGES[overlay]
    assert init["command"] == ["python3", "/opt/imdsr/plans/build_plans.py"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["IMDSR_TARGET"] == overlay
    assert env["IMDSR_PLAN_BUILDER"] == ("imdsr" if overlay == "gpu" else "trtexec")
    settings = configmap_data(objs, "imdsr-plans")
    (env_from,) = init["envFrom"]
    assert re.fullmatch(r"imdsr-plans-[a-z0-9]{10}", env_from["configMapRef"]["name"])
    script = configmap_data(objs, "imdsr-plans-script")["build_plans.py"]
    assert script == BUILD_PLANS.read_text()
    volumes = {v["name"]: v for v in spec["volumes"]}
    init_mounts = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    triton_mounts = {m["mountPath"]: m for m in triton["volumeMounts"]}
    # plans are cached on a claim, the repository is written into a volume Triton reads
    cache = volumes[init_mounts[settings["IMDSR_PLAN_CACHE"]]]
    assert cache["persistentVolumeClaim"]["claimName"] == one(objs, "PersistentVolumeClaim",
                                                              "imdsr-plan-cache")["metadata"]["name"]
    # `export repo` swaps a sibling folder in: the repository sits one level below the mount
    repo_mount = str(Path(settings["IMDSR_REPO_DIR"]).parent)
    repo_volume = init_mounts[repo_mount]
    assert "emptyDir" in volumes[repo_volume]
    assert triton_mounts[repo_mount]["name"] == repo_volume
    assert triton_mounts[repo_mount]["readOnly"] is True
    assert f"--model-repository={settings['IMDSR_REPO_DIR']}" in triton["args"]
    assert volumes[init_mounts["/opt/imdsr/plans"]]["configMap"]["name"].startswith("imdsr-plans-script-")
    serving_volume = volumes[init_mounts[str(Path(settings["IMDSR_SERVING_CONFIG"]).parent)]]
    assert serving_volume["configMap"]["name"].startswith("imdsr-serving-")
    access = one(objs, "PersistentVolumeClaim", "imdsr-plan-cache")["spec"]["accessModes"]
    assert access == (["ReadWriteMany"] if overlay == "gpu" else ["ReadWriteOnce"])


# --------------------------------------------------------------------------- serving config
def _serving(objs: list[dict]) -> dict:
    return tomllib.loads(configmap_data(objs, "imdsr-serving")["serving.toml"])


def test_base_serving_config_is_the_projects() -> None:
    source = ROOT / "export" / "serving.toml"
    if not source.exists():
        pytest.skip("export/serving.toml does not exist yet")
    assert (K8S / "base" / "serving.toml").read_text() == source.read_text(), (
        "k8s/base/serving.toml differs from export/serving.toml: cp export/serving.toml k8s/base/")


def test_jetson_serving_config_differs_only_in_tile_and_batch() -> None:
    base = tomllib.loads((K8S / "base" / "serving.toml").read_text())
    jetson = tomllib.loads((K8S / "overlays" / "jetson" / "serving.toml").read_text())
    assert jetson["tile"] < base["tile"] and jetson["jetson"]["max_batch"] < base["max_batch"]
    assert jetson["tile"] % 32 == 0
    changed = {k for k in base if base[k] != jetson[k]} | {k for k in jetson if k not in base}
    assert changed == {"tile", "jetson"}
    assert {k: v for k, v in jetson["jetson"].items() if k != "max_batch"} == base["jetson"]
    try:
        from export.serving import load_serving
    except ImportError:
        return
    for path in (K8S / "base" / "serving.toml", K8S / "overlays" / "jetson" / "serving.toml"):
        load_serving(path)  # the project's own validation (unknown keys, batch limits)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateway_tiles_match_the_serving_config(rendered: dict[str, list[dict]], overlay: str) -> None:
    objs = rendered[overlay]
    serving = _serving(objs)
    config = configmap_data(objs, "imdsr-gateway-config")
    # the gateway sends windows of tile + 2 x context; the TensorRT profiles end at serving's tile
    window = int(config["IMDSR_TILE"]) + 2 * int(config["IMDSR_TILE_CONTEXT"])
    assert window == serving["tile"], (overlay, window, serving["tile"])
    assert int(config["IMDSR_TILE"]) % 32 == 0 and int(config["IMDSR_TILE_CONTEXT"]) % 32 == 0
    assert config["IMDSR_DEFAULT_MODEL"] in ("c16nla", "c4")
    try:
        from service.settings import Settings
    except ImportError:
        Settings = None
    if Settings is not None:  # every key is a real gateway setting and parses
        fields = {f"IMDSR_{name.upper()}" for name in Settings.model_fields}
        assert set(config) <= fields, set(config) - fields
        settings = Settings(**{k[len("IMDSR_"):].lower(): v for k, v in config.items()})
        assert settings.tile + 2 * settings.tile_context == serving["tile"]
    if overlay == "jetson":
        assert serving["jetson"]["instances"] == {"default": 1}


# --------------------------------------------------------------------------- scaling, monitoring
def _adapter_rules() -> list[dict]:
    values = yaml.safe_load((K8S / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    return values["rules"]["custom"]


def _metric_names(expr: str) -> set[str]:
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?:\{|\[)", expr))
    return {w for w in words if w.startswith(("imdsr_", "nv_", "kube_"))}


def _known(name: str) -> bool:
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return name in GATEWAY_METRICS | TRITON_METRICS | KSM_METRICS or base in GATEWAY_METRICS


def test_hpas_scale_on_metrics_the_adapter_provides(rendered: dict[str, list[dict]]) -> None:
    provided = {rule["name"]["as"] for rule in _adapter_rules()}
    hpas = find(rendered["gpu"], "HorizontalPodAutoscaler")
    assert {h["metadata"]["name"] for h in hpas} == {"imdsr-triton", "imdsr-gateway"}
    for hpa in hpas:
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["name"] == hpa["metadata"]["name"]
        one(rendered["gpu"], "Deployment", spec["scaleTargetRef"]["name"])
        assert 1 <= spec["minReplicas"] < spec["maxReplicas"]
        pods_metrics = [m["pods"]["metric"]["name"] for m in spec["metrics"] if m["type"] == "Pods"]
        assert pods_metrics and set(pods_metrics) <= provided
    triton_hpa = one(rendered["gpu"], "HorizontalPodAutoscaler", "imdsr-triton")
    assert triton_hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "imdsr_triton_queue_us_per_request"
    gateway_hpa = one(rendered["gpu"], "HorizontalPodAutoscaler", "imdsr-gateway")
    assert gateway_hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] in GATEWAY_METRICS
    for overlay in ("cpu", "jetson"):
        assert not find(rendered[overlay], "HorizontalPodAutoscaler"), overlay


def test_adapter_rules_are_well_formed() -> None:
    rules = _adapter_rules()
    assert len(rules) == 2
    for rule in rules:
        assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
        series = _metric_names(rule["seriesQuery"])
        assert len(series) == 1 and _known(next(iter(series)))
        assert re.fullmatch(rule["name"]["matches"], next(iter(series)))
        assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"},
                                                  "pod": {"resource": "pod"}}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
        assert all(_known(m) for m in _metric_names(rule["metricsQuery"])), rule["metricsQuery"]


def test_grafana_dashboard_covers_gateway_and_triton() -> None:
    dash = json.loads((K8S / "monitoring" / "grafana-dashboard.json").read_text())
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = _metric_names(target["expr"])
            assert names and all(_known(n) for n in names), (panel["title"], target["expr"])
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
            used |= {n if n in TRITON_METRICS | KSM_METRICS else re.sub(r"_(bucket|sum|count)$", "", n)
                     for n in names}
    assert GATEWAY_CORE <= GATEWAY_METRICS, f"gateway no longer exports {GATEWAY_CORE - GATEWAY_METRICS}"
    assert used >= GATEWAY_CORE, GATEWAY_CORE - used
    assert used >= TRITON_METRICS - {"nv_gpu_utilization", "nv_gpu_memory_used_bytes"}
    configmap = one(render(K8S / "monitoring"), "ConfigMap", "imdsr-grafana-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["imdsr.json"]) == dash


# --------------------------------------------------------------------------- build_plans.py
# Stands in for the project's CLI with the interface of export/cli.py: `export trt -o DIR` names the
# plan model.sm<cc>.trt<major.minor>.plan; `export repo --plans DIR` copies <DIR>/<model>/**/*.plan
# into <model>/1/ and maps each plan's compute capability to it in config.pbtxt.
FAKE_IMDSR = textwrap.dedent("""\
    #!{python}
    import json, os, shutil, sys
    from pathlib import Path
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    args = sys.argv[1:]
    def opt(name):
        return args[args.index(name) + 1]
    if args[:2] == ["export", "trt"]:
        out = Path(opt("-o"))
        cc = os.environ["IMDSR_GPU_CC"].replace(".", "")
        trt = ".".join(os.environ["IMDSR_TRT_VERSION"].split(".")[:2])
        out.mkdir(parents=True, exist_ok=True)
        (out / f"model.sm{{cc}}.trt{{trt}}.plan").write_bytes(b"engine:" + opt("--onnx").encode())
    elif args[:2] == ["export", "repo"]:
        out = Path(opt("-o"))
        assert not out.exists() and out.parent.is_dir(), out
        for v in opt("--variants").split(","):
            model = f"imdeception_{{v}}"
            (out / model / "1").mkdir(parents=True)
            lines = [f'name: "{{model}}"', 'platform: "tensorrt_plan"']
            if not os.environ.get("FAKE_IGNORE_PLANS"):
                for plan in sorted((Path(opt("--plans")) / model).rglob("*.plan")):
                    shutil.copyfile(plan, out / model / "1" / plan.name)
                    cc = plan.name.split(".")[1][2:]
                    lines.append(f'cc_model_filenames {{{{ key: "{{cc[:-1]}}.{{cc[-1]}}" '
                                 f'value: "{{plan.name}}" }}}}')
            (out / model / "config.pbtxt").write_text("\\n".join(lines) + "\\n")
        (out / "MANIFEST.json").write_text("{{}}")
    else:
        sys.exit(f"unexpected: {{args}}")
""")


@pytest.fixture()
def plans_env(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "imdsr"
    fake.write_text(FAKE_IMDSR.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    for variant in ("c16nla", "c4"):
        (onnx / f"imdeception_{variant}.onnx").write_bytes(f"onnx-{variant}".encode())
    serving = tmp_path / "serving.toml"
    serving.write_text("tile = 192\nmax_batch = 8\n[gpu]\nfp16 = true\nmin_side = 32\n"
                       "[jetson]\nmax_batch = 2\nfp16 = true\n")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.jsonl"),
        "IMDSR_TARGET": "gpu",
        "IMDSR_ONNX_DIR": str(onnx),
        "IMDSR_PLAN_CACHE": str(tmp_path / "cache"),
        "IMDSR_REPO_DIR": str(tmp_path / "models" / "repo"),
        "IMDSR_SERVING_CONFIG": str(serving),
        "IMDSR_GPU_MODEL": "NVIDIA A10G",
        "IMDSR_GPU_CC": "8.6",
        "IMDSR_TRT_VERSION": "10.5.0.18",
    }


def _build_plans(env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    log = Path(env["FAKE_LOG"])
    log.unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, str(BUILD_PLANS)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, calls


def test_build_plans_caches_by_gpu_and_tensorrt(plans_env: dict[str, str]) -> None:
    first, calls = _build_plans(plans_env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["cache_hit"] is False
    assert result["key"].startswith("nvidia-a10g_sm8.6_trt10.5.0.18_fp16_t192_b8_onnx")
    builds = [c for c in calls if c[:2] == ["export", "trt"]]
    assert len(builds) == 2
    for call in builds:
        opts = dict(zip(call[2::1], call[3::1], strict=False))
        assert "--fp16" in call and opts["--tile"] == "192" and opts["--max-batch"] == "8"
        assert opts["--min-side"] == "32" and opts["--config"] == plans_env["IMDSR_SERVING_CONFIG"]
    (repo_call,) = [c for c in calls if c[:2] == ["export", "repo"]]
    cache = Path(plans_env["IMDSR_PLAN_CACHE"]) / result["key"]
    assert repo_call[repo_call.index("--target") + 1] == "gpu"
    assert repo_call[repo_call.index("--plans") + 1] == str(cache)
    assert repo_call[repo_call.index("--config") + 1] == plans_env["IMDSR_SERVING_CONFIG"]
    models = Path(plans_env["IMDSR_REPO_DIR"])
    for variant in ("c16nla", "c4"):
        plan = models / f"imdeception_{variant}" / "1" / "model.sm86.trt10.5.plan"
        assert plan.read_bytes().endswith(f"imdeception_{variant}.onnx".encode())
        assert "model.sm86.trt10.5.plan" in (plan.parent.parent / "config.pbtxt").read_text()
    assert (models / "PLAN_CACHE_KEY").read_text().strip() == result["key"]
    assert json.loads((cache / "manifest.json").read_text())["gpu"] == "NVIDIA A10G"

    # a restart on the same kind of GPU: nothing is built, the repository is written again
    second, calls = _build_plans(plans_env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {**result, "cache_hit": True}
    assert not [c for c in calls if c[:2] == ["export", "trt"]]
    assert (models / "imdeception_c4" / "1" / "model.sm86.trt10.5.plan").is_file()

    # another GPU model, or another TensorRT, gets a key and a build of its own
    for change in ({"IMDSR_GPU_MODEL": "NVIDIA L4", "IMDSR_GPU_CC": "8.9"},
                   {"IMDSR_TRT_VERSION": "10.6.0"}):
        other, calls = _build_plans({**plans_env, **change})
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout)["cache_hit"] is False
        assert len([c for c in calls if c[:2] == ["export", "trt"]]) == 2
    entries = sorted(p.name for p in Path(plans_env["IMDSR_PLAN_CACHE"]).iterdir())
    assert len(entries) == 3 and not [e for e in entries if e.startswith(".build-")], entries


def test_build_plans_fails_loudly(plans_env: dict[str, str]) -> None:
    proc, _ = _build_plans({**plans_env, "FAKE_IGNORE_PLANS": "1"})
    assert proc.returncode == 1 and "does not serve model.sm86.trt10.5.plan" in proc.stderr
    proc, _ = _build_plans({**plans_env, "IMDSR_TARGET": "cpu"})
    assert proc.returncode == 1 and "IMDSR_TARGET must be gpu or jetson" in proc.stderr
    Path(plans_env["IMDSR_ONNX_DIR"], "imdeception_c4.onnx").unlink()
    proc, _ = _build_plans(plans_env)
    assert proc.returncode == 1 and "missing ONNX for c4" in proc.stderr


def test_build_plans_with_trtexec_on_jetson(plans_env: dict[str, str], tmp_path: Path) -> None:
    trtexec = Path(plans_env["PATH"].split(os.pathsep)[0]) / "trtexec"
    trtexec.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        from pathlib import Path
        with open(os.environ["FAKE_LOG"], "a") as f:
            f.write(json.dumps(["trtexec", *sys.argv[1:]]) + "\\n")
        out = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--saveEngine="))
        Path(out).write_bytes(b"engine")
    """))
    trtexec.chmod(trtexec.stat().st_mode | stat.S_IEXEC)
    env = {**plans_env, "IMDSR_TARGET": "jetson", "IMDSR_PLAN_BUILDER": "trtexec",
           "IMDSR_GPU_MODEL": "Orin", "IMDSR_GPU_CC": "8.7", "IMDSR_TRT_VERSION": "10.3.0.30"}
    proc, calls = _build_plans(env)
    assert proc.returncode == 0, proc.stderr
    runs = [c for c in calls if c[0] == "trtexec"]
    assert len(runs) == 2
    for call in runs:  # jetson: 192-px tiles from the file, batches of 2 from [jetson]
        assert "--optShapes=input:2x3x192x192" in call and "--maxShapes=input:2x3x192x192" in call
        assert "--minShapes=input:1x3x32x32" in call and "--fp16" in call
    assert "_trt10.3.0.30_fp16_t192_b2_" in json.loads(proc.stdout)["key"]
    assert (Path(env["IMDSR_REPO_DIR"]) / "imdeception_c4" / "1" / "model.sm87.trt10.3.plan").is_file()
    repo_call = next(c for c in calls if c[:2] == ["export", "repo"])
    assert repo_call[repo_call.index("--target") + 1] == "jetson"


def test_build_plans_names_plans_like_the_exporter() -> None:
    try:
        from export.trt_plan import plan_filename as project_name
    except ImportError:
        pytest.skip("export package not importable")
    namespace: dict = {}
    exec(compile(BUILD_PLANS.read_text(), str(BUILD_PLANS), "exec"), namespace)
    for cc, trt in (("8.6", "10.5.0.18"), ("7.2", "10.3.0"), ("9.0", "10.5")):
        assert namespace["plan_filename"](cc, trt) == project_name(cc, trt)


def test_build_plans_runs_on_python_310() -> None:
    import ast

    ast.parse(BUILD_PLANS.read_text(), feature_version=(3, 10))
