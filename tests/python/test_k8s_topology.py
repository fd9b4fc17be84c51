"""The production topology of k8s/production, played on Docker (kubelet.py).

Starts the frontend StatefulSet's pod and the server StatefulSet's replicas
from the manifests' own images, env, ports, securityContext, probes and
secret volume, on a private Docker network whose aliases stand in for the
headless Services' DNS names, and checks what the manifests promise without
a human in the loop:

- with the cluster secret mounted (a random one per run, as the Secret
  ``kvs-cluster-secret`` the operator creates), every server admits itself
  (KVS_JOIN, showing the secret) and all pods pass their readinessProbe;
  ``clusterStatus`` lists every ordinal as active;
- an anonymous ``addServer``/``shutdownServer`` on the frontend's port, or a
  wrong secret, gets Fault 9 and changes nothing, as does an anonymous
  ``put`` on a server's own port; the same calls showing the secret
  (``http://kvs:SECRET@host``) pass the guard, and a ``shutdownServer``
  showing it removes a server, which rejoins by itself when restarted;
- a server started after the Secret changed (the others still run with the
  old value) is refused (Fault 9), stays unready and out of the membership,
  and the cluster goes on;
- a scale-up (the next ordinal) is admitted, caught up and ready;
- a scale-down (SIGTERM with the pod's grace period) leaves cleanly: the id
  is gone from the membership, not "lost";
- a crashed server (SIGKILL), recreated under its ordinal on its claim, is
  readmitted and holds every pair again;
- the client proxy Deployment reaches the frontend through the Service name;
- a rescheduled frontend (new container, same claim volume) recovers the
  data from the servers before it turns ready;
- every server keeps its pairs on a claim of its own (KVS_DATA_DIR): a
  server recreated on it recovers them from it, and after a power cut
  (every pod SIGKILLed at once, then recreated on the same claims) the
  frontend recovers every acknowledged pair from the servers;
- without the Secret (or its key) no pod starts (Kubernetes keeps them in
  ContainerCreating).

The host reaches containers only through ports published on 127.0.0.1.
Needs Docker (skips without it, fails when the environment variable CI is
set); runs docker/build.sh once per session for the images (cached, a few
seconds when nothing changed; KVS_SKIP_IMAGE_BUILD=1 uses them as they are).
Playing ``fsGroup`` on the secret's files needs root (or CAP_CHOWN): without
it the test skips (fails when CI is set).
"""

import base64
import json
import os
import re
import time
import xmlrpc.client
from pathlib import Path
from urllib.parse import quote

import pytest

import kubelet

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "k8s" / "production"
READY_SECONDS = 90
SETTLE_SECONDS = 30
SECRET_NAME = "kvs-cluster-secret"
SECRET_KEY = "cluster-secret"
UNAUTHORIZED = 9
ALREADY_MEMBER = 4
# How long a server with another secret is watched staying out.
REFUSED_SECONDS = 8


def new_secret():
    """A secret made as docs/deploy.md has the operator make it (base64 of
    32 random bytes: '+', '/' and '=' need percent-encoding in a URL)."""
    return base64.b64encode(os.urandom(32)).decode()


def showing(port, secret):
    """A proxy to 127.0.0.1:port showing ``secret`` (HTTP Basic, as a user writes it)."""
    return xmlrpc.client.ServerProxy(f"http://kvs:{quote(secret, safe='')}@127.0.0.1:{port}")


def fault_code(call, *args):
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(*args)
    return info.value.faultCode


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
    if os.geteuid() != 0:
        why = "giving the secret's files to the pods' fsGroup, as the kubelet does, needs root"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {why}", pytrace=False)
        pytest.skip(why)


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


def wait_exited(k, pod, timeout=SETTLE_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubelet.docker("inspect", "--format", "{{.State.Status}}", pod.cid, check=False) in ("exited", "dead"):
            return
        time.sleep(0.25)
    pytest.fail(f"{pod.name} still runs {timeout} s after it was shut down:\n{k.logs(pod)}", pytrace=False)


def test_pods_wait_for_the_cluster_secret():
    """No Secret, or no key cluster-secret in it: neither StatefulSet's pod
    starts (Kubernetes: ContainerCreating). Nothing reaches Docker."""
    for secrets in ({}, {SECRET_NAME: {"other-key": "x"}}):
        k = kubelet.Kubelet(PRODUCTION, secrets=secrets)
        for name in ("kvs-frontend", "kvs-server"):
            with pytest.raises(kubelet.KubeletError, match="ContainerCreating"):
                k.start_statefulset_pod(name, 0)
        assert k.pods == {} and k.volumes == [] and k.secret_root is None


def test_production_topology_on_docker():
    require_docker_and_images()
    secret = new_secret()
    with kubelet.Kubelet(PRODUCTION, secrets={SECRET_NAME: {SECRET_KEY: secret}}) as k:
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
        secret_root = k.secret_root
        assert secret_root and os.path.isdir(secret_root)

        for key in range(50):
            assert fe.put(key, key * 10) == "Success"
        assert fe.get(7) == "7:70"

        # The secret is in force: anonymous membership calls on the
        # frontend's published port, and a wrong secret, get Fault 9 and
        # change nothing; a server's own port refuses an anonymous put.
        assert fault_code(fe.addServer, replicas) == UNAUTHORIZED
        assert fault_code(fe.shutdownServer, 0) == UNAUTHORIZED
        assert fault_code(fe.adoptServer, 0) == UNAUTHORIZED
        wrong = showing(fport, new_secret())
        assert fault_code(wrong.addServer, replicas) == UNAUTHORIZED
        assert fault_code(wrong.shutdownServer, 0) == UNAUTHORIZED
        for pod in servers:
            direct = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{pod.host_port('rpc')}")
            assert fault_code(direct.put, 7, 666) == UNAUTHORIZED
            assert fault_code(direct.shutdownServer) == UNAUTHORIZED
            assert direct.get(7) == "7:70"  # reads of a server stay open
        assert status(fport) == {"active": list(range(replicas)), "joining": [], "lost": []}
        assert fe.get(7) == "7:70"
        # Showing the secret passes the guard: addServer of a member is then
        # answered on its merits ("already a member").
        admin = showing(fport, secret)
        assert fault_code(admin.addServer, 0) == ALREADY_MEMBER

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

        # shutdownServer showing the secret removes a server (not lost); its
        # process exits, and when the container is restarted (the kubelet
        # would, restartPolicy Always) it rejoins by itself and catches up.
        last = replicas - 1
        assert admin.shutdownServer(last).endswith("shutting down")
        wait_status(fport, lambda s: last not in s["active"] + s["joining"] + s["lost"])
        wait_exited(k, servers[last])
        assert fe.put(9, 91) == "Success"
        k.kill_pod(servers[last].name)
        servers[last] = k.start_statefulset_pod("kvs-server", last)
        k.wait_probe(servers[last], "readinessProbe", READY_SECONDS)
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        pairs = fe.printKVPairs(last).splitlines()
        assert "9:91" in pairs and "7:71" in pairs and len(pairs) == 51, pairs[:5]

        # The Secret changes while the cluster runs: a pod started afterwards
        # reads the new value, the running ones keep the old. Its join is
        # refused (Fault 9): it stays unready and out of the membership, and
        # the cluster goes on. (docs/deploy.md: rotate all pods at once.)
        k.secrets[SECRET_NAME] = {SECRET_KEY: new_secret()}
        stranger = k.start_statefulset_pod("kvs-server", replicas)
        k.wait_probe(stranger, "startupProbe", READY_SECONDS)
        deadline = time.monotonic() + REFUSED_SECONDS
        while time.monotonic() < deadline:
            assert not k.probe(stranger, "readinessProbe"), k.logs(stranger)
            st = status(fport)
            assert replicas not in st["active"] + st["joining"] + st["lost"], st
            time.sleep(0.5)
        assert fe.put(10, 101) == "Success"
        logs = k.delete_pod(stranger.name)
        assert "join failed" in logs and "fault 9" in logs, logs
        assert status(fport)["active"] == list(range(replicas))
        k.secrets[SECRET_NAME] = {SECRET_KEY: secret}

        # A server crashes (SIGKILL); the StatefulSet recreates it under the
        # same ordinal, on its claim; the frontend readmits it.
        k.kill_pod(servers[1].name)
        wait_status(fport, lambda s: 1 not in s["active"])
        assert fe.put(8, 81) == "Success"
        servers[1] = k.start_statefulset_pod("kvs-server", 1)
        k.wait_probe(servers[1], "readinessProbe", READY_SECONDS)
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        pairs = fe.printKVPairs(1).splitlines()
        assert "8:81" in pairs and "7:71" in pairs and "10:101" in pairs and len(pairs) == 51, pairs[:5]

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
        # The recovered frontend is guarded too, and shows the secret to the servers.
        assert fault_code(fe.shutdownServer, 0) == UNAUTHORIZED
        assert fe.put(11, 111) == "Success"
    # close() removed everything; nothing of this run is left.
    left = kubelet.docker("ps", "--all", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}")
    assert left == ""
    assert not os.path.exists(secret_root) and k.secret_root is None
    assert kubelet.docker("volume", "ls", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}") == ""


def data_volume(k, pod):
    """The named volume mounted at the pod's KVS_DATA_DIR (its claim)."""
    data_dir = kubelet.Kubelet.resolve_env(pod.container, pod.name, "kvs", pod.labels)["KVS_DATA_DIR"]
    mounts = json.loads(kubelet.docker("inspect", "--format", "{{json .Mounts}}", pod.cid))
    found = [m for m in mounts if m["Destination"] == data_dir]
    assert len(found) == 1 and found[0]["Type"] == "volume" and found[0]["RW"], mounts
    return found[0]["Name"]


def test_power_cut_keeps_every_pair_on_the_claims():
    """Every server on its own claim: one recreated server recovers its pairs
    from it, and after every pod (frontend included) is SIGKILLed at once and
    recreated on the same claims, every acknowledged pair is there."""
    require_docker_and_images()
    secret = new_secret()
    with kubelet.Kubelet(PRODUCTION, secrets={SECRET_NAME: {SECRET_KEY: secret}}) as k:
        replicas = k.find("StatefulSet", "kvs-server")["spec"]["replicas"]
        frontend = k.start_statefulset_pod("kvs-frontend", 0)
        servers = [k.start_statefulset_pod("kvs-server", i) for i in range(replicas)]
        for pod in [frontend, *servers]:
            k.wait_probe(pod, "readinessProbe", READY_SECONDS)
        fport = frontend.host_port("rpc")
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        claims = [data_volume(k, pod) for pod in servers]
        assert len(set(claims)) == replicas and set(claims) <= set(k.volumes), claims
        assert data_volume(k, frontend) not in claims

        fe = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{fport}")
        pairs = {key: key * 3 + 1 for key in range(40)}
        for key, value in pairs.items():
            assert fe.put(key, value) == "Success"

        # One server crashes; recreated on its claim, it comes back with the pairs.
        k.kill_pod(servers[0].name)
        servers[0] = k.start_statefulset_pod("kvs-server", 0)
        assert data_volume(k, servers[0]) == claims[0]
        k.wait_probe(servers[0], "readinessProbe", READY_SECONDS)
        assert f"data folder recovered dir=/data keys={len(pairs)}" in k.logs(servers[0])
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        assert fe.put(100, 1001) == "Success"
        pairs[100] = 1001

        # Power cut: every pod dies at once; the StatefulSets recreate them
        # (servers and frontend together) on the same claims.
        for pod in [frontend, *servers]:
            k.kill_pod(pod.name)
        servers = [k.start_statefulset_pod("kvs-server", i) for i in range(replicas)]
        frontend = k.start_statefulset_pod("kvs-frontend", 0)
        for pod in [frontend, *servers]:
            k.wait_probe(pod, "readinessProbe", READY_SECONDS)
        for pod in servers:
            assert f"data folder recovered dir=/data keys={len(pairs)}" in k.logs(pod), k.logs(pod)
        fport = frontend.host_port("rpc")
        wait_status(fport, lambda s: s["active"] == list(range(replicas)))
        fe = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{fport}")
        for key, value in pairs.items():
            assert fe.get(key) == f"{key}:{value}"
        expected = "\n".join(f"{key}:{value}" for key, value in sorted(pairs.items()))
        for server_id in range(replicas):
            assert fe.printKVPairs(server_id) == expected, server_id
        assert fe.put(101, 1011) == "Success"
        assert fe.get(101) == "101:1011"
    assert kubelet.docker("ps", "--all", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}") == ""
    assert kubelet.docker("volume", "ls", "--quiet", "--filter", f"label={kubelet.LABEL}={k.tag}") == ""
