"""The cluster secret, seen from Python's own xmlrpc.client.

With ``KVS_CLUSTER_SECRET`` set for the processes, the calls that change
data or membership out of band answer Fault 9 unless they show the secret
the way ``ServerProxy`` does from a ``http://user:secret@host`` URL (or a
``Bearer`` header); clients' ``put`` and ``get`` stay open. ``run_cluster.py``
run with the same variable shows it on its own calls, so the course's
commands work unchanged.
"""

import base64
import os
import subprocess
import sys
import xmlrpc.client

import pytest

import kvstest

SECRET = "s3cret:with@odd/chars"
UNAUTHORIZED = 9
RUN_CLUSTER = str(kvstest.REPO / "run_cluster.py")


def authorized(url):
    """``url`` with the secret as its userinfo, as a Python user writes it."""
    from urllib.parse import quote
    return url.replace("http://", "http://kvs:%s@" % quote(SECRET, safe=""), 1)


def fault_code(call, *args):
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(*args)
    return info.value.faultCode


@pytest.fixture
def guarded(make_cluster, monkeypatch):
    monkeypatch.setenv("KVS_CLUSTER_SECRET", SECRET)
    cluster = make_cluster(servers=0, clients=1)
    for server_id in range(3):
        cluster.start_server(server_id, add=False)
    return cluster


def test_membership_needs_the_secret_and_data_calls_stay_open(guarded):
    c = guarded
    # Plain ServerProxy objects: kvstest's proxies show the secret from the
    # environment, as run_cluster.py's do.
    anonymous = xmlrpc.client.ServerProxy(c.frontend_url)
    assert fault_code(anonymous.addServer, 0) == UNAUTHORIZED
    admin = xmlrpc.client.ServerProxy(authorized(c.frontend_url))
    assert admin.addServer(0) == "Success"
    assert admin.addServer(1) == "Success"
    # A Bearer header works too.
    body = xmlrpc.client.dumps((2,), "addServer").encode()
    status, reply = kvstest.raw_post(c.host, kvstest.FRONTEND_PORT, body,
                                     headers={"Authorization": "Bearer " + SECRET})
    assert status == 200 and b"Success" in reply, reply
    wrong = "Basic " + base64.b64encode(b"kvs:wrong").decode()
    status, reply = kvstest.raw_post(c.host, kvstest.FRONTEND_PORT,
                                     xmlrpc.client.dumps((2,), "shutdownServer").encode(),
                                     headers={"Authorization": wrong})
    assert kvstest.fault_of(reply).faultCode == UNAUTHORIZED

    assert anonymous.put(1, 10) == "Success"
    assert anonymous.get(1) == "1:10"
    assert xmlrpc.client.ServerProxy(c.url(kvstest.CLIENT_BASE)).put(2, 20) == "Success"
    assert anonymous.listServer() == "0, 1, 2"
    assert fault_code(anonymous.shutdownServer, 0) == UNAUTHORIZED

    server = xmlrpc.client.ServerProxy(c.url(kvstest.SERVER_BASE))
    assert fault_code(server.put, 1, 666) == UNAUTHORIZED
    assert fault_code(server.resetStore, "0:0", True, 1) == UNAUTHORIZED
    assert fault_code(server.applyBatch, "0:0", xmlrpc.client.Binary(b"\xff" * 24)) == UNAUTHORIZED
    assert fault_code(server.dumpState, "0:0", 0, 10) == UNAUTHORIZED
    assert fault_code(server.heartbeat, "1:2:1") == UNAUTHORIZED
    assert fault_code(server.shutdownServer) == UNAUTHORIZED
    # Reads of a server stay open; nothing was changed.
    assert server.get(1) == "1:10"
    assert anonymous.get(1) == "1:10"
    # Refusals and calls are counted on /metrics (Prometheus text).
    status, text = kvstest.http_get(c.host, kvstest.SERVER_BASE, "/metrics")
    assert status == 200
    refused = [line for line in text.decode().splitlines()
               if line.startswith('kvs_refused_total{reason="unauthorized"}')]
    assert refused and int(float(refused[0].split()[1])) >= 5, refused
    status, text = kvstest.http_get(c.host, kvstest.FRONTEND_PORT, "/metrics")
    assert 'kvs_requests_total{method="put",outcome="ok"}' in text.decode()
    assert "kvs_request_duration_seconds_bucket" in text.decode()
    assert admin.shutdownServer(2).endswith("shutting down")
    assert anonymous.listServer() == "0, 1"


def test_run_cluster_shows_the_secret_from_the_environment(tmp_path, binaries_built):
    host = kvstest.next_host()
    env = dict(os.environ, KVS_NO_BUILD="1", KVS_CLUSTER_SECRET=SECRET)
    commands = "put:1:1\naddServer\nshutdownServer:0\nlistServer\nget:1\nterminate\n"
    result = subprocess.run(
        [sys.executable, RUN_CLUSTER, "-c", "1", "-s", "2", "--host", host,
         "--log-dir", str(tmp_path / "logs"), "--seed", "7"],
        input=commands, capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = [chunk.strip() for chunk in result.stdout.split("Enter a command: ")[1:]]
    assert answers[0] == "Success", answers
    assert "shutting down" in answers[2], answers
    assert answers[3] == "1, 2", answers
    assert answers[4] == "1:1", answers
    assert not kvstest.our_processes(host)
