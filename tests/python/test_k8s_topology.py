"""The production topology of k8s/production, played on Docker (kubelet.py).

Starts the frontend StatefulSet's pod and the server StatefulSet's replicas
from the manifests' own images, env, ports, securityContext and probes, on a
private Docker network whose aliases stand in for the headless Services' DNS
names, and checks what the manifests promise without a human in the loop:

- every server admits itself (KVS_JOIN) and all pods pass their
  readinessProbe; ``clusterStatus`` lists every ordinal as active;
- a scale-up (the next ordinal) is admitted, caught up and ready;
- a scale-down (SIGTERM with the pod's grace period) leaves cleanly: the id
  is gone from the membership, not "lost";
- a crashed server (SIGKILL), recreated empty under its ordinal, is
  readmitted by catch-up and holds every pair again;
- the client proxy Deployment reaches the frontend through the Service name;
- a rescheduled frontend (new container, same claim volume) recovers the
  data from the servers before it turns ready.

The host reaches containers only through ports published on 127.0.0.1.
Needs Docker (skips without it, fails when the environment variable CI is
set); runs docker/build.sh once per session for the images (cached, a few
seconds when nothing changed; KVS_SKIP_IMAGE_BUILD=1 uses them as they are).
"""

import os
import re
import time
import xmlrpc.client
from pathlib import Path

import pytest

import kubelet

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "k8s" / "production"
READY_SECONDS = 90
SETTLE_SECONDS = 30


def require_docker_and_images():
    """Docker answers and docker/build.sh has built the manifests' images."""
    why = kubelet.docker_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Docker is not usable: {why}", pytrace=False)
        pytest.skip(why)
    ok, output = kubelet.build_images_once()
    if not ok:
        pytest.fail(f"docker/build.sh failed:\n{output}", pytrace=False)
    images = sorted({c["image"] for o in kubelet.load_manifests(PRODUCTION)
                     if o["kind"] in ("StatefulSet", "Deployment")
                     for c in o["spec"]["template"]["spec"]["containers"]})
    missing = kubelet.missing_images(images)
    assert not missing, f"images {missing} are missing after docker/build.sh"


def status(frontend_port):
    """clusterStatus as {"active": [...], "joining": [...], "lost": [...]}."""
    text = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{frontend_port}", allow_none=False).clusterStatus()
    parts = {}
    for part in text.split(";"):
        name, _, ids = part.strip().partition(":")
        parts[name.strip()] = sorted(int(i) for i in re.findall(r"\d+", ids))
    assert set(parts) == {"active", "joining", "lost"}, text
    return parts


def wait_status(frontend_port, want, timeout=SETTLE_SECONDS):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = status(frontend_port)
            if want(last):
                return last
        except (OSError, xmlrpc.client.Error) as exc:
            last = repr(exc)
        time.sleep(0.25)
    pytest.fail(f"cluster status never matched within {timeout} s; last: {last}", pytrace=False)


def test_production_topology_on_docker():
    require_docker_and_images()
    with kubelet.Kubelet(PRODUCTION) as k:
        server_sts = k.find("StatefulSet", "kvs-server")
        replicas = server_sts["spec"]["replicas"]
        assert replicas >= 2

        # kubectl apply: both StatefulSets at once (servers are Parallel).
        frontend = k.start_statefulset_pod("kvs-frontend", 0)
        servers = [k.start_statefulset_pod("kvs-server", i) for i in range(replicas)]
        for pod in [frontend, *servers]:
            k.wait_probe(pod, "startupProbe", READY_SECONDS)
        for pod in [frontend, *servers]:
            k.wait_probe(pod, "readinessProbe", READY_SECONDS)
        fport = frontend.host_port("rpc")
        st = wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        assert st["joining"] == [] and st["lost"] == []
        fe = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{fport}")
        assert fe.listServer() == ", ".join(str(i) for i in range(replicas))

        for key in range(50):
            assert fe.put(key, key * 10) == "Success"
        assert fe.get(7) == "7:70"

        # A client proxy, through the Service name kvs-frontend.kvs.svc.cluster.local.
        client = k.start_deployment_pod("kvs-client")
        k.wait_probe(client, "readinessProbe", READY_SECONDS)
        proxy = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{client.host_port('rpc')}")
        assert proxy.put(100, 1000) == "Success"
        assert proxy.get(100) == "100:1000"

        # Scale up: the next ordinal admits itself and catches up.
        new = k.start_statefulset_pod("kvs-server", replicas)
        k.wait_probe(new, "readinessProbe", READY_SECONDS)
        st = wait_status(fport, lambda s: s["active"] == list(range(replicas + 1)))
        pairs = fe.printKVPairs(replicas).splitlines()
        assert "7:70" in pairs and "100:1000" in pairs and len(pairs) == 51

        # Scale down: SIGTERM, the server leaves (not lost), puts go on.
        logs = k.delete_pod(new.name)
        st = wait_status(fport, lambda s: replicas not in s["active"] + s["joining"] + s["lost"])
        assert st["active"] == list(range(replicas)), (st, logs)
        assert fe.put(7, 71) == "Success"

        # A server crashes (SIGKILL); the StatefulSet recreates it under the
        # same ordinal, empty; the frontend readmits it by catch-up.
        k.kill_pod(servers[1].name)
        wait_status(fport, lambda s: 1 not in s["active"])
        assert fe.put(8, 81) == "Success"
        servers[1] = k.start_statefulset_pod("kvs-server", 1)
        k.wait_probe(servers[1], "readinessProbe", READY_SECONDS)
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        pairs = fe.printKVPairs(1).splitlines()
        assert "8:81" in pairs and "7:71" in pairs and len(pairs) == 51, pairs[:5]

        # The frontend is rescheduled: same claim, new container. It recovers
        # from the servers before it is ready.
        k.delete_pod(frontend.name)
        for pod in servers:
            deadline = time.monotonic() + SETTLE_SECONDS
            while k.probe(pod, "readinessProbe"):
                assert time.monotonic() < deadline, f"{pod.name} stays ready without a frontend"
                time.sleep(0.25)
        frontend = k.start_statefulset_pod("kvs-frontend", 0)
        k.wait_probe(frontend, "readinessProbe", READY_SECONDS)
        fport = frontend.host_port("rpc")
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        fe = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{fport}")
        assert fe.get(7) == "7:71"
        assert fe.get(8) == "8:81"
        assert fe.get(100) == "100:1000"
        assert fe.get(49) == "49:490"
        for pod in servers:
            k.wait_probe(pod, "readinessProbe", READY_SECONDS)
    # close() removed everything; nothing of this run is left.
    left = kubelet.docker("ps", "--all", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}")
    assert left == ""
    assert kubelet.docker("volume", "ls", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}") == ""
