"""deploy/k8s: the manifests parse, and what they name matches what the binary and the
client accept: every flag of the node's container is a flag of `quiver start`, the ports
agree, the node's run directory is the hostPath the executors mount, the executors'
QUIVER_ADDRESS is that directory's socket and resolves as the client reads it, the token
comes from the same Secret and key on both sides, the nodes gossip on their pod IP and join
the headless Service that selects them, on the port they expose for TCP and UDP, and the
image builds the wheel."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import quiver
from quiver._wire.address import SOCKET_NAME

yaml = pytest.importorskip("yaml")

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"


def load(name: str) -> dict:
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert len(docs) == 1, f"{name}: {len(docs)} documents"
    return docs[0]


@pytest.fixture(scope="module")
def daemonset() -> dict:
    ds = load("daemonset.yaml")
    assert ds["kind"] == "DaemonSet" and ds["apiVersion"] == "apps/v1"
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    return ds


@pytest.fixture(scope="module")
def node_container(daemonset) -> dict:
    [c] = [c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "quiver"]
    return c


@pytest.fixture(scope="module")
def executor() -> dict:
    pod = load("spark-executor-pod-template.yaml")
    assert pod["kind"] == "Pod"
    [c] = pod["spec"]["containers"]
    assert c["name"] == "spark-kubernetes-executor"  # the container Spark fills in
    return pod


def flags(args: list[str]) -> dict[str, str]:
    """--flag value pairs of a container's args (after the subcommand)."""
    out, i = {}, 0
    while i < len(args):
        a = args[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a.split("=", 1)
                out[k] = v
            elif i + 1 < len(args) and not args[i + 1].startswith("--"):
                out[a] = args[i + 1]
                i += 1
            else:
                out[a] = ""
        i += 1
    return out


def volume_path(pod_spec: dict, container: dict, mount: str) -> str:
    """The hostPath behind the container's volume mounted at mount."""
    [name] = [m["name"] for m in container["volumeMounts"] if m["mountPath"] == mount]
    [vol] = [v for v in pod_spec["volumes"] if v["name"] == name]
    return vol["hostPath"]["path"]


def test_every_flag_is_one_quiver_start_takes(node_container):
    args = node_container["args"]
    assert args[:2] == ["start", "--block"], "the node must stay in the foreground of its container"
    binary = os.environ.get("QUIVER_BIN") or str(REPO / "bin" / "quiver")
    help_text = subprocess.run([binary, "start", "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"--[a-z][a-z-]+", help_text))
    for flag in flags(args[1:]):
        assert flag in known, f"{flag} is not a flag of quiver start"


def test_ports_agree(node_container):
    listen = flags(node_container["args"])["--listen"]
    port = int(listen.rsplit(":", 1)[1])
    [p] = [p for p in node_container["ports"] if p["name"] == "flight"]
    assert p["containerPort"] == port == p["hostPort"]
    assert listen.startswith("0.0.0.0:") and "--token-file" in flags(node_container["args"]), \
        "a node reachable from the network needs a token"


def test_the_socket_the_executors_use_is_the_nodes(daemonset, node_container, executor):
    run_dir = flags(node_container["args"])["--run-dir"]
    host_dir = volume_path(daemonset["spec"]["template"]["spec"], node_container, run_dir)
    [exe] = executor["spec"]["containers"]
    env = {e["name"]: e for e in exe["env"]}
    address = env["QUIVER_ADDRESS"]["value"]
    assert address == f"grpc+unix://{run_dir}/{SOCKET_NAME}"
    sock_dir = os.path.dirname(address.removeprefix("grpc+unix://"))
    assert volume_path(executor["spec"], exe, sock_dir) == host_dir
    # The client reads these names: QUIVER_ADDRESS as the address, QUIVER_TOKEN as the token.
    old = {k: os.environ.get(k) for k in ("QUIVER_ADDRESS", "QUIVER_TOKEN")}
    try:
        os.environ["QUIVER_ADDRESS"], os.environ["QUIVER_TOKEN"] = address, "t0ken"
        assert quiver.resolve_address() == address
        c = quiver.connect()
        assert c.address == address and c.connection.token == "t0ken"
        c.close()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_the_token_comes_from_one_secret(daemonset, node_container, executor):
    token_file = flags(node_container["args"])["--token-file"]
    mount = os.path.dirname(token_file)
    [m] = [m for m in node_container["volumeMounts"] if m["mountPath"] == mount]
    [vol] = [v for v in daemonset["spec"]["template"]["spec"]["volumes"] if v["name"] == m["name"]]
    secret, key = vol["secret"]["secretName"], os.path.basename(token_file)
    [exe] = executor["spec"]["containers"]
    ref = {e["name"]: e for e in exe["env"]}["QUIVER_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert (ref["name"], ref["key"]) == (secret, key)


@pytest.fixture(scope="module")
def service() -> dict:
    svc = load("service.yaml")
    assert svc["kind"] == "Service" and svc["apiVersion"] == "v1"
    return svc


def test_nodes_gossip_on_their_pod_ip(node_container):
    args = flags(node_container["args"])
    host, port = args["--gossip"].rsplit(":", 1)
    assert host.startswith("$(") and host.endswith(")"), "gossip on an address from the downward API"
    env = {e["name"]: e for e in node_container["env"]}
    assert env[host[2:-1]]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    ports = {(p["containerPort"], p["protocol"]) for p in node_container["ports"]}
    assert {(int(port), "TCP"), (int(port), "UDP")} <= ports, "memberlist gossips over TCP and UDP"


def test_nodes_join_the_headless_service_that_selects_them(daemonset, node_container, service):
    host, port = flags(node_container["args"])["--join"].rsplit(":", 1)
    name, namespace, rest = host.split(".", 2)
    assert (name, namespace) == (service["metadata"]["name"], service["metadata"]["namespace"])
    assert rest in ("svc", "svc.cluster.local")
    assert namespace == daemonset["metadata"]["namespace"]
    spec = service["spec"]
    assert spec["clusterIP"] == "None", "headless: the name resolves to every node's pod IP"
    assert spec.get("publishNotReadyAddresses") is True, "a node joins before it is ready"
    assert spec["selector"].items() <= daemonset["spec"]["template"]["metadata"]["labels"].items()
    gossip_port = int(flags(node_container["args"])["--gossip"].rsplit(":", 1)[1])
    assert {(p["port"], p["protocol"]) for p in spec["ports"]} == {(int(port), "TCP"), (int(port), "UDP")}
    assert all(p.get("targetPort", p["port"]) == gossip_port == int(port) for p in spec["ports"])


def test_the_node_runs_as_the_spark_user(daemonset, node_container):
    """The socket is user-only: the node's uid is the Spark images' (185), set up by the init
    container that hands it the run directory."""
    assert node_container["securityContext"]["runAsUser"] == 185
    [init] = daemonset["spec"]["template"]["spec"]["initContainers"]
    assert "chown 185:185" in " ".join(init["command"]) and "0700" in " ".join(init["command"])


def test_the_image_builds_the_wheel_and_runs_quiver():
    text = (K8S / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) >= 2, "a multi-stage build"
    go = re.search(r"^go (\d+\.\d+)", (REPO / "go.mod").read_text(), re.M).group(1)
    assert stages[0].startswith(f"golang:{go}"), f"the build stage's Go ({stages[0]}) is not go.mod's {go}"
    assert "pyclient/build_wheels.py" in text and "pip install" in text
    assert re.search(r'^ENTRYPOINT \["quiver"\]', text, re.M)
    assert re.search(r"^USER 185", text, re.M)
    for pin in ("wheel==", "setuptools=="):
        req = (REPO / "pyclient" / "requirements.txt").read_text()
        m = re.search(rf"{pin}(\S+)", text)
        assert m, f"the image pins {pin.rstrip('=')}"
        if pin in req:
            assert f"{pin}{m.group(1)}" in req, f"{pin} in the image differs from requirements.txt"
