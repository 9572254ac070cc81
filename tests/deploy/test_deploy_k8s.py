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
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_deploy_docker import image_entrypoint
from tests.support.deploy_tools import ROOT, checkov_scan, run, tool
from training.models.registry import get_architecture

K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu", "jetson")
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")  # oldest supported, current
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
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
def test_imdsr_servers_listen_on_every_interface(rendered: dict[str, list[dict]], overlay: str) -> None:
    """`imdsr gateway|triton|serve` bind 127.0.0.1 unless told otherwise: a pod must say 0.0.0.0."""
    servers = []
    for deployment in find(rendered[overlay], "Deployment"):
        for c in all_containers(deployment["spec"]["template"]["spec"]):
            argv = [*c.get("command", []), *c.get("args", [])]
            if c.get("command"):  # else the image's entrypoint runs, which is `imdsr` in ours
                if Path(argv[0]).name != "imdsr":
                    continue
                argv = argv[1:]
            if argv and argv[0] in ("gateway", "triton", "serve"):
                pairs = list(zip(argv, argv[1:], strict=False))
                assert ("--host", "0.0.0.0") in pairs or "--host=0.0.0.0" in argv, (overlay, c["name"], argv)
                servers.append(c["name"])
    assert "gateway" in servers and ("triton" in servers) == (overlay == "cpu"), (overlay, servers)


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
        assert "nodeSelector" not in triton  # the GPU request schedules it (no Operator label)
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
    # the project's own command (run for real in dry-run mode by test_plan_builder_runs_*)
    # args only: the image's entrypoint (NVIDIA's, for CUDA forward compatibility) must run
    assert "command" not in init and init["args"] == ["export", "plans"]
    env = {e["name"]: e["value"] for e in init["env"]}
    assert env["IMDSR_TARGET"] == overlay
    assert env["IMDSR_PLAN_BUILDER"] == "trtexec"  # the TensorRT container's own build
    settings = configmap_data(objs, "imdsr-plans")
    (env_from,) = init["envFrom"]
    assert re.fullmatch(r"imdsr-plans-[a-z0-9]{10}", env_from["configMapRef"]["name"])
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


def test_jetson_serving_config_differs_only_in_window_and_batch() -> None:
    base = tomllib.loads((K8S / "base" / "serving.toml").read_text())
    jetson = tomllib.loads((K8S / "overlays" / "jetson" / "serving.toml").read_text())
    assert jetson["window"] < base["window"] and jetson["jetson"]["max_batch"] < base["max_batch"]
    assert jetson["window"] % 32 == 0
    changed = {k for k in base if base[k] != jetson[k]} | {k for k in jetson if k not in base}
    assert changed == {"window", "jetson"}
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
    # the gateway's default windows (tile + 2 x context) are the full windows the engines are
    # tuned for; tests/unit/test_windows.py checks every other tile a request may ask for
    # (the context is each model's own, published in its config.pbtxt; IMDSR_TILE_CONTEXT, which
    # would override it for every architecture, is not set)
    assert "IMDSR_TILE_CONTEXT" not in config
    context = get_architecture("imdeception").tiling.context
    window = int(config["IMDSR_TILE"]) + 2 * context
    assert window == serving["window"], (overlay, window, serving["window"])
    assert int(config["IMDSR_TILE"]) % 32 == 0
    assert config["IMDSR_DEFAULT_MODEL"] in ("c16nla", "c4")
    try:
        from service.settings import Settings
    except ImportError:
        Settings = None
    if Settings is not None:  # every key is a real gateway setting and parses
        fields = {f"IMDSR_{name.upper()}" for name in Settings.model_fields}
        assert set(config) <= fields, set(config) - fields
        settings = Settings(**{k[len("IMDSR_"):].lower(): v for k, v in config.items()})
        assert settings.tile + 2 * context == serving["window"] and settings.tile_context is None
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


# --------------------------------------------------------------------------- plan builder
def _configmap_named(objs: list[dict], name: str) -> dict[str, str]:
    return one(objs, "ConfigMap", name)["data"]


def plan_builder_invocation(objs: list[dict], root: Path) -> tuple[list[str], dict[str, str]]:
    """The build-plans initContainer's exact command and environment, with each volume it mounts
    (and the image's ONNX folder) mapped to a folder under ``root``; ConfigMap volumes are
    filled from the rendered ConfigMaps, as the kubelet would."""
    spec = pod_spec(objs, "imdsr-triton")
    init = container(spec, "build-plans", init=True)
    volumes = {v["name"]: v for v in spec["volumes"]}
    places: dict[str, Path] = {}
    for mount in init["volumeMounts"]:
        local = root / "volumes" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        source = volumes[mount["name"]]
        if "configMap" in source:
            for key, text in _configmap_named(objs, source["configMap"]["name"]).items():
                (local / key).write_text(text)
        places[mount["mountPath"]] = local
    places["/opt/imdsr/onnx"] = root / "image-onnx"  # baked into the export image

    def local_path(value: str) -> str:
        for mount, local in places.items():
            if value == mount or value.startswith(mount + "/"):
                return str(local) + value[len(mount):]
        return value

    env: dict[str, str] = {}
    for source in init.get("envFrom", []):
        env.update(_configmap_named(objs, source["configMapRef"]["name"]))
    env.update({e["name"]: e["value"] for e in init.get("env", [])})
    env = {k: local_path(v) for k, v in env.items()}
    stage = init["image"].rpartition(":")[0].rpartition("/")[2]  # .../export-jetson -> its stage
    entry = init.get("command") or image_entrypoint(stage)
    return [*entry, *init.get("args", [])], env


def _image_onnx(folder: Path, variants: list[str]) -> None:
    """What the Dockerfile's onnx stage bakes in, made by the same command."""
    folder.mkdir(parents=True, exist_ok=True)
    for variant in variants:
        run([str(IMDSR), "export", "onnx", "--variant", variant, "--no-verify",
             "-o", f"{folder}/"], timeout=300)


IMDSR = Path(sys.executable).parent / "imdsr"


def _run_plans(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # NVIDIA's entrypoint (not here: no NGC image) execs the rest, `imdsr ...`
    if command[0] == "/opt/nvidia/nvidia_entrypoint.sh":
        command = command[1:]
    assert command[0] == "imdsr"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("IMDSR_", "TRT_"))}
    return subprocess.run([str(IMDSR), *command[1:], "--dry-run"], capture_output=True, text=True,
                          timeout=300, env={**base, **env})


@pytest.mark.parametrize("overlay", ["gpu", "jetson"])
def test_plan_builder_runs_through_the_real_cli(overlay: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")  # `export repo` writes each model's ONNX from the shipped weights
    from export.serving import load_serving

    objs = render(K8S / "overlays" / overlay)
    command, env = plan_builder_invocation(objs, tmp_path)
    variants = env["IMDSR_VARIANTS"].split(",")
    _image_onnx(Path(env["IMDSR_ONNX_DIR"]), variants)
    serving = load_serving(env["IMDSR_SERVING_CONFIG"])
    target = serving.trt_target(overlay)  # type: ignore[arg-type]

    first = _run_plans(command, env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["cache_hit"] is False and result["dry_run"] is True
    assert result["tensorrt"] == target.tensorrt_version and result["precision"] == "fp16"
    assert f"_w{serving.window}_b{serving.max_batch_for(overlay)}_" in result["key"]
    plan = result["plan"]
    sm = result["compute_capability"].replace(".", "")
    assert plan == f"model.sm{sm}.trt{target.tensorrt_version}.plan"
    repo = Path(env["IMDSR_REPO_DIR"])
    for variant in variants:
        model = repo / f"imdeception_{variant}"
        config = (model / "config.pbtxt").read_text()
        assert 'platform: "tensorrt_plan"' in config and f'value: "{plan}"' in config
        assert (model / "1" / plan).is_file()
        # the window limit the gateway will read from Triton is the engine profile's max
        limit = r'key: "imdsr_max_window"\s+value \{\s+string_value: "' + str(serving.window) + '"'
        assert re.search(limit, config)
    assert (repo / "PLAN_CACHE_KEY").read_text().strip() == result["key"]

    # a restart finds its plans; the repository is written again
    second = _run_plans(command, env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {**result, "cache_hit": True}

    # IMDSR_PRECISION=fp32 builds fp32, under a key of its own
    fp32 = _run_plans(command, {**env, "IMDSR_PRECISION": "fp32"})
    assert fp32.returncode == 0, fp32.stderr
    assert json.loads(fp32.stdout)["precision"] == "fp32" and "_fp32_" in json.loads(fp32.stdout)["key"]

    # another GPU model with the same compute capability gets its own entry
    other = _run_plans(command, {**env, "IMDSR_GPU_NAME": "Other GPU",
                                 "IMDSR_GPU_CC": result["compute_capability"]})
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["cache_hit"] is False
    cache = Path(env["IMDSR_PLAN_CACHE"])
    assert not [p for p in cache.iterdir() if p.name.startswith(".build-")]


def test_plan_builder_refuses_another_tensorrt_build(tmp_path: Path) -> None:
    objs = render(K8S / "overlays" / "gpu")
    command, env = plan_builder_invocation(objs, tmp_path)
    _image_onnx(Path(env["IMDSR_ONNX_DIR"]), env["IMDSR_VARIANTS"].split(","))
    proc = _run_plans(command, {**env, "TRT_VERSION": "10.5.0.17"})  # what an NGC image declares
    assert proc.returncode == 2
    assert "TensorRT is 10.5.0.17, but Triton serves with 10.5.0.18" in proc.stderr
    assert not Path(env["IMDSR_REPO_DIR"]).exists()


def test_plan_builder_fails_clearly(tmp_path: Path) -> None:
    objs = render(K8S / "overlays" / "gpu")
    command, env = plan_builder_invocation(objs, tmp_path)
    proc = _run_plans(command, env)  # no ONNX in the image
    assert proc.returncode == 2 and "missing ONNX for c16nla" in proc.stderr
    proc = _run_plans(command, {**env, "IMDSR_TARGET": "cpu"})
    assert proc.returncode == 2 and "target must be gpu or jetson" in proc.stderr
    proc = _run_plans(command, {**env, "IMDSR_PRECISION": "int8"})
    assert proc.returncode == 2 and "precision must be fp16 or fp32" in proc.stderr
