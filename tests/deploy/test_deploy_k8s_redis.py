"""The optional Redis job store (k8s/components/redis), added to every overlay and checked with
the same real tools and rules as the overlays themselves (tests/deploy/test_deploy_k8s.py): the
schemas, the lock-down, checkov; then what the component must give the gateway replicas: one
job store and one ReadWriteMany jobs volume, and Redis reachable from the gateway only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.deploy.test_deploy_k8s as overlay_checks
from tests.deploy.test_deploy_k8s import (
    KUBERNETES_VERSIONS,
    OVERLAYS,
    configmap_data,
    container,
    find,
    one,
    pod_spec,
    render,
)
from tests.support.deploy_tools import ROOT

COMPONENT = ROOT / "k8s" / "components" / "redis"


@pytest.fixture(scope="module")
def with_redis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """Each overlay with the component, as an operator enables it: what a ``components:`` entry in
    the overlay renders (a kustomization over both, in the overlays' namespace)."""
    rendered = {}
    for overlay in OVERLAYS:
        root = tmp_path_factory.mktemp(f"with_redis_{overlay}")
        # kustomize takes only relative paths to other kustomizations
        resource = os.path.relpath(ROOT / "k8s" / "overlays" / overlay, root)
        component = os.path.relpath(COMPONENT, root)
        (root / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: imdsr\n"
            f"resources:\n  - {resource}\ncomponents:\n  - {component}\n")
        rendered[overlay] = render(root)
    return rendered


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_objects_validate_against_kubernetes_schemas(with_redis: dict[str, list[dict]],
                                                     version: str) -> None:
    overlay_checks.test_core_objects_validate_against_kubernetes_schemas(with_redis, version)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_is_locked_down_like_the_rest(with_redis: dict[str, list[dict]], overlay: str) -> None:
    overlay_checks.test_pods_are_locked_down(with_redis, overlay)
    image = container(pod_spec(with_redis[overlay], "imdsr-redis"), "redis")["image"]
    name, _, tag = image.rpartition(":")
    assert name == "redis" and tag and tag != "latest", image


def test_checkov_has_no_unexplained_findings(with_redis: dict[str, list[dict]], tmp_path: Path) -> None:
    overlay_checks.test_checkov_has_no_unexplained_findings(with_redis, tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gateways_share_one_store_and_one_volume(with_redis: dict[str, list[dict]],
                                                 overlay: str) -> None:
    objs = with_redis[overlay]
    config = configmap_data(objs, "imdsr-gateway-config")
    service = one(objs, "Service", "imdsr-redis")
    (port,) = service["spec"]["ports"]
    assert config["IMDSR_JOBS_STORE"] == f"redis://imdsr-redis:{port['port']}/0"
    redis = pod_spec(objs, "imdsr-redis")
    assert service["spec"]["selector"].items() <= \
        one(objs, "Deployment", "imdsr-redis")["spec"]["template"]["metadata"]["labels"].items()
    assert overlay_checks.port_number(container(redis, "redis"), port["targetPort"]) == 6379
    # Job records survive a Redis restart: append-only file on a claim.
    args = container(redis, "redis")["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert "persistentVolumeClaim" in {v["name"]: v for v in redis["volumes"]}["data"]
    # Every replica mounts one ReadWriteMany claim where the jobs' files are (IMDSR_JOBS_DIR).
    gateway = pod_spec(objs, "imdsr-gateway")
    volumes = {v["name"]: v for v in gateway["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container(gateway, "gateway")["volumeMounts"]}
    jobs = volumes[mounts[config["IMDSR_JOBS_DIR"]]]
    assert set(jobs) == {"name", "persistentVolumeClaim"}, jobs  # the emptyDir is gone
    claim = one(objs, "PersistentVolumeClaim", jobs["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    size = claim["spec"]["resources"]["requests"]["storage"]
    assert size.endswith("Gi") and int(config["IMDSR_JOBS_MAX_RESULT_BYTES"]) < int(size[:-2]) << 30


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_redis(with_redis: dict[str, list[dict]], overlay: str) -> None:
    objs = with_redis[overlay]
    policy = one(objs, "NetworkPolicy", "imdsr-redis-ingress")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "imdsr-redis"}
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "imdsr-gateway"}}}]
    assert [p["port"] for p in rule["ports"]] == ["redis"]
    assert find(objs, "NetworkPolicy", "imdsr-default-deny-ingress")  # everything else: denied


def test_overlays_without_the_component_keep_jobs_per_pod() -> None:
    """The default: no Redis, the local store in the pod's own emptyDir (as `make serve`)."""
    for overlay in OVERLAYS:
        objs = render(ROOT / "k8s" / "overlays" / overlay)
        assert not find(objs, "Deployment", "imdsr-redis")
        config = configmap_data(objs, "imdsr-gateway-config")
        assert "IMDSR_JOBS_STORE" not in config
        gateway = pod_spec(objs, "imdsr-gateway")
        mounts = {m["mountPath"]: m["name"] for m in container(gateway, "gateway")["volumeMounts"]}
        volume = {v["name"]: v for v in gateway["volumes"]}[mounts[config["IMDSR_JOBS_DIR"]]]
        assert "emptyDir" in volume
