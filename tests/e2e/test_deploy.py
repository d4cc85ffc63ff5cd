"""deploy/: the example configs pass `millwatch validate`, the Prometheus config and rules of
the compose stack pass promtool, the systemd unit passes `systemd-analyze verify`, every YAML
file parses, the Kubernetes manifests build with kustomize and match the Kubernetes API's
schemas. The Dockerfile is not built here (no container engine on the test machines).

scripts/test installs every tool these tests use; where one is missing they skip, and a skip
fails the run under CI=true or MILLWATCH_REQUIRE_PEERS (conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions, latest_version

from collector import millwatch_bin

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml"), *(ROOT / "dashboards/provisioning").glob("*.yaml")])
K8S_MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")
# The oldest and the newest Kubernetes whose API schemas kubernetes-validate carries.
K8S_VERSIONS = [all_versions()[0], latest_version()]


def load_yaml_documents(path: Path) -> list:
    with open(path) as f:
        return list(yaml.safe_load_all(f))


def validate(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([millwatch_bin(), "validate", "--config", str(path)], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "config/edge.yaml", DEPLOY / "config/gateway.yaml", DEPLOY / "compose/millwatch.yaml",
     DEPLOY / "compose/millwatch-edge.yaml"],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_example_config_passes_validate(path):
    r = validate(path)
    assert r.returncode == 0, f"millwatch validate --config {path}: exit {r.returncode}\n{r.stdout}{r.stderr}"


@pytest.mark.parametrize("name", ["edge-configmap.yaml", "gateway-configmap.yaml"])
def test_kubernetes_configmap_config_passes_validate(name, tmp_path):
    (doc,) = load_yaml_documents(DEPLOY / "kubernetes" / name)
    assert doc["kind"] == "ConfigMap"
    path = tmp_path / "millwatch.yaml"
    path.write_text(doc["data"]["millwatch.yaml"])
    r = validate(path)
    assert r.returncode == 0, f"{name}: exit {r.returncode}\n{r.stdout}{r.stderr}"


def test_validate_refuses_a_broken_example(tmp_path):
    """The validate tests above can fail: a typo in a copy of edge.yaml is refused."""
    text = (DEPLOY / "config/edge.yaml").read_text()
    assert "max_samples_per_send:" in text
    path = tmp_path / "edge-typo.yaml"
    path.write_text(text.replace("max_samples_per_send:", "max_sample_per_send:"))
    r = validate(path)
    assert r.returncode == 1
    assert "max_sample_per_send" in r.stdout + r.stderr


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_yaml_parses(path):
    docs = load_yaml_documents(path)
    assert docs and all(isinstance(d, dict) for d in docs), path


def test_compose_stack_services_and_mounts():
    (compose,) = load_yaml_documents(DEPLOY / "compose/docker-compose.yaml")
    assert set(compose["services"]) == {"millwatch", "millwatch-edge", "prometheus", "alertmanager", "grafana"}
    here = DEPLOY / "compose"
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (here / source).exists(), f"{name}: {source} does not exist"
    assert "--web.enable-remote-write-receiver" in compose["services"]["prometheus"]["command"]
    # The edge forwards to the central service, on the port that service listens on.
    (edge,) = load_yaml_documents(here / "millwatch-edge.yaml")
    [uplink] = edge["exporters"]["otlp"]
    (central,) = load_yaml_documents(here / "millwatch.yaml")
    assert uplink["endpoint"] == "http://millwatch:" + central["receivers"]["otlp"]["grpc"]["endpoint"].split(":")[1]
    assert "millwatch" in compose["services"]["millwatch-edge"]["depends_on"]


def test_compose_prometheus_config_and_rules_pass_promtool():
    """promtool: Debian's prometheus package."""
    compose = DEPLOY / "compose"
    r = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=compose, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout + r.stderr
    rules = sorted((compose / "rules").glob("*.yaml"))
    r = subprocess.run([PROMTOOL, "check", "rules", *map(str, rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze: Debian's systemd package."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd/millwatch.service").read_text()
    assert "/usr/local/bin/millwatch" in text
    unit = tmp_path / "millwatch.service"
    # verify checks that ExecStart exists: point it at the binary under test
    unit.write_text(text.replace("/usr/local/bin/millwatch", millwatch_bin()))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = "\n".join(line for line in (r.stdout + r.stderr).splitlines() if "millwatch.service" in line)
    assert r.returncode == 0 and not out, f"exit {r.returncode}\n{r.stdout}{r.stderr}"
    for key in ("NoNewPrivileges=yes", "ProtectSystem=strict", "DynamicUser=yes", "StateDirectory=millwatch",
                "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service"):
        assert key in text, key


def test_kubernetes_manifests_build_with_kustomize():
    """kubectl (its built-in kustomize): Debian's kubernetes-client package."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    r = subprocess.run([kubectl, "kustomize", str(DEPLOY / "kubernetes")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = sorted(line.split(":", 1)[1].strip() for line in r.stdout.splitlines() if line.startswith("kind:"))
    assert kinds == ["ConfigMap", "ConfigMap", "DaemonSet", "Deployment", "Namespace", "PersistentVolumeClaim",
                     "Service"]
    for doc in yaml.safe_load_all(r.stdout):
        assert doc["metadata"].get("namespace") == "millwatch" or doc["kind"] == "Namespace", doc["metadata"]
        kubernetes_validate.validate(doc, latest_version(), strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", K8S_MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifest_matches_the_api_schema(path, version):
    """kubernetes-validate (PyPI) carries the API's JSON schemas, so this runs offline; strict:
    a field the API does not know fails as a wrong type does."""
    for doc in load_yaml_documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_schema_check_refuses_a_misspelt_field():
    """The schema test above can fail: a copy of the gateway with `volumeMount` for `volumeMounts`."""
    (doc,) = load_yaml_documents(DEPLOY / "kubernetes/gateway-deployment.yaml")
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    container["volumeMount"] = container.pop("volumeMounts")
    with pytest.raises(kubernetes_validate.ValidationError, match="volumeMount"):
        kubernetes_validate.validate(doc, latest_version(), strict=True)


def test_kubernetes_workloads_run_as_non_root():
    for name, kind in [("edge-daemonset.yaml", "DaemonSet"), ("gateway-deployment.yaml", "Deployment")]:
        (doc,) = load_yaml_documents(DEPLOY / "kubernetes" / name)
        assert doc["kind"] == kind
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (c,) = pod["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        ports = {p["containerPort"] for p in c["ports"]}
        assert ports == {4317, 4318, 9464}
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/var/lib/millwatch" in mounts and "/etc/millwatch" in mounts


def test_dockerfile_shape():
    """Not built here (no container engine): the stages, user, ports and volume are checked."""
    text = (DEPLOY / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) == 2 and froms[0].startswith("rust:") and froms[1].startswith("debian:") and "slim" in froms[1]
    assert "cargo build --release --locked -p millwatch" in text
    assert "USER 10001:10001" in text
    assert "EXPOSE 4317 4318 9464" in text
    assert 'VOLUME ["/var/lib/millwatch"]' in text
    toolchain = (ROOT / "rust-toolchain.toml").read_text()
    version = froms[0].split(":")[1].split("-")[0]
    assert f'channel = "{version}' in toolchain, "the build stage's Rust is rust-toolchain.toml's"
