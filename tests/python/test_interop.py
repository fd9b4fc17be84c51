"""Interop: Python's own xmlrpc.client against kvs-frontend, kvs-server, kvs-client.

Every method on both paths (``/`` and ``/RPC2``), and bad input — malformed
XML, wrong types, wrong arity, unknown methods, unknown server ids, an
oversized body — answered cleanly while the process keeps serving.
"""

import xmlrpc.client

import pytest

import kvstest

PATHS = ["", "/", "/RPC2"]
ROLES = ["frontend", "server", "client"]
INT_MAX = 2 ** 31 - 1
INT_MIN = -(2 ** 31)


def role_port(role):
    return {"frontend": kvstest.FRONTEND_PORT, "server": kvstest.SERVER_BASE,
            "client": kvstest.CLIENT_BASE}[role]


def role_proxy(cluster, role, path=""):
    return {"frontend": cluster.frontend, "server": lambda p: cluster.server(0, p),
            "client": lambda p: cluster.client(0, p)}[role](path)


def assert_still_serving(cluster, role):
    """A good call on the role, and the process is alive."""
    key = 4242
    cluster.frontend().put(key, 7)
    assert role_proxy(cluster, role).get(key) == "%d:7" % key
    assert cluster.procs_alive(), cluster.logs()


@pytest.fixture
def cluster(make_cluster):
    c = make_cluster(servers=2, clients=1)
    c.procs_alive = lambda: all(p.alive() for p in c.procs)
    return c


# The fault codes of the README's table (kvs-proto's `fault` module).
KEY_NOT_FOUND, UNKNOWN_SERVER, PARSE_ERROR = 1, 2, 8
INVALID_PARAMS, UNKNOWN_METHOD = 400, 404


# -- every method, every path --------------------------------------------

@pytest.mark.parametrize("path", PATHS)
def test_frontend_methods(cluster, path):
    fe = cluster.frontend(path)
    assert isinstance(fe.put(1, 10), str)
    assert fe.get(1) == "1:10"
    assert fe.listServer() == "0, 1"
    assert fe.printKVPairs(0) == "1:10"
    cluster.start_server(2, add=False)
    assert fe.addServer(2) == "Success"
    assert fe.printKVPairs(2) == "1:10"
    assert fe.listServer() == "0, 1, 2"
    assert isinstance(fe.shutdownServer(2), str)
    assert fe.listServer() == "0, 1"


@pytest.mark.parametrize("path", PATHS)
def test_client_methods(cluster, path):
    client = cluster.client(0, path)
    assert isinstance(client.put(5, 50), str)
    assert client.get(5) == "5:50"
    assert cluster.frontend().get(5) == "5:50"


@pytest.mark.parametrize("path", PATHS)
def test_server_methods_via_frontend_writes(cluster, path):
    cluster.frontend().put(3, 30)
    server = cluster.server(0, path)
    assert server.get(3) == "3:30"
    assert "3:30" in server.printKVPairs().splitlines()


@pytest.mark.parametrize("path", PATHS)
def test_standalone_server_methods(make_cluster, path):
    c = make_cluster(servers=1, clients=0, frontend=False)
    server = c.server(0, path)
    assert isinstance(server.put(8, 80), str)
    assert server.get(8) == "8:80"
    assert "8:80" in server.printKVPairs().splitlines()
    assert isinstance(server.shutdownServer(), str)
    assert kvstest.wait_exit(c.servers[0], 10) == 0, c.logs()


def test_server_health(make_cluster):
    c = make_cluster(servers=1, clients=0, frontend=False)
    status, _ = kvstest.http_get(c.host, kvstest.SERVER_BASE, "/health")
    assert status == 200


def test_extreme_ints_round_trip(cluster):
    fe = cluster.frontend()
    fe.put(INT_MAX, INT_MIN)
    fe.put(INT_MIN, INT_MAX)
    assert fe.get(INT_MAX) == "%d:%d" % (INT_MAX, INT_MIN)
    assert cluster.client(0).get(INT_MIN) == "%d:%d" % (INT_MIN, INT_MAX)


def test_i4_and_untyped_string_params(cluster):
    body = (b"<?xml version='1.0'?><methodCall><methodName>put</methodName><params>"
            b"<param><value><i4>12</i4></value></param>"
            b"<param><value><int>34</int></value></param></params></methodCall>")
    status, _ = kvstest.raw_post(cluster.host, kvstest.FRONTEND_PORT, body)
    assert status == 200
    assert cluster.frontend().get(12) == "12:34"


def test_keep_alive_survives_faults(cluster):
    fe = cluster.frontend()
    for i in range(50):
        fe.put(i, i + 1)
        with pytest.raises(xmlrpc.client.Fault):
            fe.noSuchMethod()
        assert fe.get(i) == "%d:%d" % (i, i + 1)


def test_get_of_unknown_key_is_a_fault(cluster):
    with pytest.raises(xmlrpc.client.Fault) as info:
        cluster.frontend().get(987654)
    assert info.value.faultCode == KEY_NOT_FOUND
    with pytest.raises(xmlrpc.client.Fault) as info:
        cluster.client(0).get(987654)
    assert info.value.faultCode == KEY_NOT_FOUND
    assert_still_serving(cluster, "frontend")


# -- bad input ----------------------------------------------------------

@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("body", [
    b"<?xml version='1.0'?><methodCall><methodName>get</methodName><params>",
    b"this is not xml at all",
    b"<methodCall><methodName>get</methodName><params><param><value><int>1"
    b"</value></param></params></methodCall>",
    b"",
])
def test_malformed_xml_is_a_fault(cluster, role, body):
    status, reply = kvstest.raw_post(cluster.host, role_port(role), body)
    assert status in (200, 400), reply[:300]
    if status == 200:
        assert kvstest.fault_of(reply).faultCode == PARSE_ERROR
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("role", ROLES)
def test_fault_of_big_malformed_body_is_short(cluster, role):
    body = b"<?xml version='1.0'?><methodCall><methodName>get</methodName>" + b"<x>" * 34000
    assert len(body) > 100_000
    status, reply = kvstest.raw_post(cluster.host, role_port(role), body)
    assert status == 200, reply[:300]
    fault = kvstest.fault_of(reply)
    assert len(fault.faultString) < 2000
    assert len(reply) < 4000
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", [
    ("get", ("abc",)),
    ("put", ("a", 1)),
    ("put", (1, "b")),
    ("put", (1.5, 2)),
    ("get", ([1],)),
])
def test_wrong_types_are_faults(cluster, role, call):
    method, args = call
    with pytest.raises(xmlrpc.client.Fault) as info:
        getattr(role_proxy(cluster, role), method)(*args)
    assert info.value.faultCode == INVALID_PARAMS
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("call", [("get", ()), ("get", (1, 2)), ("put", (1,)), ("put", (1, 2, 3))])
def test_wrong_arity_is_a_fault(cluster, role, call):
    method, args = call
    with pytest.raises(xmlrpc.client.Fault) as info:
        getattr(role_proxy(cluster, role), method)(*args)
    assert info.value.faultCode == INVALID_PARAMS
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("call", [("listServer", (1,)), ("printKVPairs", ()),
                                  ("printKVPairs", ("x",)), ("addServer", ("x",)),
                                  ("shutdownServer", ()), ("addServer", ())])
def test_frontend_admin_bad_params_are_faults(cluster, call):
    method, args = call
    with pytest.raises(xmlrpc.client.Fault):
        getattr(cluster.frontend(), method)(*args)
    assert cluster.frontend().listServer() == "0, 1"
    assert_still_serving(cluster, "frontend")


@pytest.mark.parametrize("role", ROLES)
def test_unknown_method_is_a_fault(cluster, role):
    with pytest.raises(xmlrpc.client.Fault) as info:
        role_proxy(cluster, role).noSuchMethod(1)
    assert info.value.faultCode == UNKNOWN_METHOD
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("method", ["printKVPairs", "shutdownServer"])
def test_unknown_server_id_is_a_fault(cluster, method):
    with pytest.raises(xmlrpc.client.Fault) as info:
        getattr(cluster.frontend(), method)(99)
    assert info.value.faultCode == UNKNOWN_SERVER
    assert cluster.frontend().listServer() == "0, 1"
    assert_still_serving(cluster, "frontend")


@pytest.mark.parametrize("role", ROLES)
def test_oversized_body_gets_http_error(cluster, role):
    status = kvstest.post_oversized(cluster.host, role_port(role), 3 * 1024 * 1024)
    assert status == 413, "expected HTTP 413 for a 3 MiB body, got %r" % status
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("role", ROLES)
def test_oversized_body_via_proxy_is_protocol_error(cluster, role):
    big = "x" * (3 * 1024 * 1024)
    with pytest.raises((xmlrpc.client.ProtocolError, ConnectionError)) as info:
        role_proxy(cluster, role).get(big)
    if isinstance(info.value, xmlrpc.client.ProtocolError):
        assert info.value.errcode == 413
    assert_still_serving(cluster, role)


@pytest.mark.parametrize("role", ROLES)
def test_wrong_http_method_and_path(cluster, role):
    status, _ = kvstest.raw_post(cluster.host, role_port(role), b"<x/>", path="/nope")
    assert status == 404
    status, _ = kvstest.http_get(cluster.host, role_port(role), "/RPC2")
    assert status in (404, 405)
    assert_still_serving(cluster, role)
