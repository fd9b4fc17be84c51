"""Logs as JSON lines for collectors, and metrics in the Prometheus text format."""

import json
import os
import subprocess
import xmlrpc.client

import kvstest


def test_json_logs_are_one_object_per_line(tmp_path, binaries_built):
    host = kvstest.next_host()
    env = dict(os.environ, KVS_LOG_FORMAT="json", RUST_LOG="info")
    proc = subprocess.Popen([kvstest.binary("kvs-server"), "-i", "0", "--bind", host],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stderr.readline()
        record = json.loads(line)
        assert record["level"] == "INFO"
        assert record["fields"]["message"] == "server listening"
    finally:
        proc.terminate()
        proc.wait(10)


def test_every_process_counts_and_times_its_calls(make_cluster):
    c = make_cluster(servers=1, clients=1)
    assert c.client(0).put(3, 30) == "Success"
    for port in (kvstest.FRONTEND_PORT, kvstest.SERVER_BASE, kvstest.CLIENT_BASE):
        status, text = kvstest.http_get(c.host, port, "/metrics")
        assert status == 200
        text = text.decode()
        assert 'kvs_requests_total{method="put",outcome="ok"}' in text or \
            'kvs_requests_total{method="applyBatch",outcome="ok"}' in text, text[:500]
        assert "# TYPE kvs_request_duration_seconds histogram" in text
    status, text = kvstest.http_get(c.host, kvstest.FRONTEND_PORT, "/metrics")
    text = text.decode()
    for name in ("kvs_replication_round_trip_seconds_count{server=\"0\"}",
                 "kvs_replication_lag_writes{server=\"0\"}", "kvs_catch_ups_total{outcome=\"done\"}",
                 "kvs_servers_active 1", "kvs_superseded 0"):
        assert name in text, name
    fe = xmlrpc.client.ServerProxy(c.frontend_url)
    assert fe.get(3) == "3:30"
