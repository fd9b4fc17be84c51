"""Semantics the course harness relies on, checked against the real binaries.

put/get through the client proxy, listServer's string form, addServer's
state transfer, surviving a SIGKILLed server, shutdownServer's clean exit.
"""

import signal
import threading
import time
import xmlrpc.client

import pytest

import kvstest


def pairs_of(text):
    """printKVPairs' reply as a list of (key, value) in reply order."""
    result = []
    for line in text.splitlines():
        key, value = line.split(":")
        result.append((int(key), int(value)))
    return result


def wait_until(predicate, timeout=10.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def test_put_then_get_through_the_proxy(cluster):
    client = cluster.client(0)
    client.put(1, 100)
    assert client.get(1) == "1:100"
    client.put(1, 101)
    assert client.get(1) == "1:101"
    client.put(-5, -6)
    assert client.get(-5) == "-5:-6"


def test_get_reply_splits_like_the_harness(cluster):
    cluster.client(0).put(77, 88)
    parts = cluster.client(0).get(77).split(":")
    assert (int(parts[0]), int(parts[1])) == (77, 88)


def test_list_server_is_a_comma_string(cluster):
    reply = cluster.frontend().listServer()
    assert isinstance(reply, str)
    assert reply == "0, 1"
    assert [int(p) for p in reply.split(",")] == [0, 1]


def test_print_kv_pairs_is_ordered_by_key(cluster):
    fe = cluster.frontend()
    for key in (5, -3, 12, 0, 7):
        fe.put(key, key * 10)
    for server_id in (0, 1):
        assert pairs_of(fe.printKVPairs(server_id)) == [(-3, -30), (0, 0), (5, 50), (7, 70),
                                                        (12, 120)]


def test_add_server_transfers_every_pair(cluster):
    fe = cluster.frontend()
    expected = {key: key * 3 + 1 for key in range(300)}
    for key, value in expected.items():
        fe.put(key, value)
    cluster.start_server(2, add=False)
    assert fe.addServer(2) == "Success"
    assert dict(pairs_of(fe.printKVPairs(2))) == expected
    assert fe.listServer() == "0, 1, 2"
    fe.put(1000, 1)
    assert "1000:1" in fe.printKVPairs(2).splitlines()


def test_add_server_to_empty_cluster_then_write(make_cluster):
    c = make_cluster(servers=0, clients=1)
    c.start_server(0)
    c.client(0).put(1, 2)
    assert c.client(0).get(1) == "1:2"
    assert c.frontend().printKVPairs(0) == "1:2"


def test_add_server_while_writing(cluster):
    """Pairs written during addServer are on the new server too."""
    stop = threading.Event()
    written = {}
    errors = []

    def writer():
        fe = cluster.frontend()
        key = 0
        while not stop.is_set():
            try:
                fe.put(key, key + 5)
            except Exception as exc:  # any failure fails the test below
                errors.append(exc)
                return
            written[key] = key + 5
            key += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        cluster.start_server(2, add=False)
        assert cluster.frontend().addServer(2) == "Success"
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    on_new = dict(pairs_of(cluster.frontend().printKVPairs(2)))
    assert on_new == written


def test_sigkilled_server_is_survived(cluster):
    client = cluster.client(0)
    for key in range(20):
        client.put(key, key)
    victim = cluster.servers[0]
    victim.popen.send_signal(signal.SIGKILL)
    victim.popen.wait(5)
    for key in range(20):
        assert client.get(key) == "%d:%d" % (key, key)
    for key in range(20):
        client.put(key, key + 100)
        assert client.get(key) == "%d:%d" % (key, key + 100)
    assert wait_until(lambda: "0" not in cluster.frontend().listServer().split(", "))
    assert "19:119" in cluster.frontend().printKVPairs(1).splitlines()


def test_sigkill_every_server_then_add_one(cluster):
    client = cluster.client(0)
    client.put(1, 1)
    for server_id in (0, 1):
        cluster.servers[server_id].popen.send_signal(signal.SIGKILL)
        cluster.servers[server_id].popen.wait(5)
    try:  # kvs still answers from the frontend; a fault is acceptable too
        assert client.get(1) == "1:1"
    except xmlrpc.client.Fault:
        pass
    cluster.start_server(2, add=False)
    assert cluster.frontend().addServer(2) == "Success"
    client.put(2, 2)
    assert client.get(2) == "2:2"
    assert pairs_of(cluster.frontend().printKVPairs(2)) == [(1, 1), (2, 2)]


def test_shutdown_server_leaves_and_exits_zero(cluster):
    fe = cluster.frontend()
    fe.put(1, 1)
    assert isinstance(fe.shutdownServer(0), str)
    assert fe.listServer() == "1"
    assert kvstest.wait_exit(cluster.servers[0], 10) == 0, cluster.logs()
    with pytest.raises(xmlrpc.client.Fault):
        fe.printKVPairs(0)
    fe.put(2, 2)
    assert cluster.client(0).get(1) == "1:1"
    assert cluster.client(0).get(2) == "2:2"


def test_server_exits_zero_on_sigterm(make_cluster):
    c = make_cluster(servers=1, clients=0, frontend=False)
    c.servers[0].popen.send_signal(signal.SIGTERM)
    assert kvstest.wait_exit(c.servers[0], 10) == 0


def test_killed_server_leaves_list_server(cluster):
    cluster.servers[1].popen.send_signal(signal.SIGKILL)
    cluster.servers[1].popen.wait(5)
    cluster.frontend().put(1, 1)  # a write notices at the latest
    assert wait_until(lambda: cluster.frontend().listServer() == "0"), \
        cluster.frontend().listServer()


def test_concurrent_clients_see_their_writes(make_cluster):
    c = make_cluster(servers=3, clients=4)
    errors = []

    def work(client_id):
        client = c.client(client_id)
        try:
            for i in range(150):
                key = client_id * 1000 + i % 20
                client.put(key, i)
                reply = client.get(key)
                if reply != "%d:%d" % (key, i):
                    errors.append((client_id, key, i, reply))
                    return
        except Exception as exc:  # reported below
            errors.append((client_id, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    first = c.frontend().printKVPairs(0)
    assert c.frontend().printKVPairs(1) == first
    assert c.frontend().printKVPairs(2) == first
