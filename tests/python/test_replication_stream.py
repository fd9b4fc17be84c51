"""The replication stream on a server's port, probed as a hostile client would.

A server's port also speaks kvs's binary replication stream (a connection
whose first byte is 0x00; see ``kvs_proto::stream``). A server started with
short bounds (1 s to send the hello or the next call's length, 1 s for the
rest of a call) is probed with raw sockets: silence, a half-sent call, an
oversized call, a wrong version and a forged batch. Each is cut off or
refused with a fault, nothing it sent is applied, and the cluster keeps
serving writes through the frontend, which itself replicates over the stream.
"""

import socket
import struct
import time
import xmlrpc.client

import pytest

import kvstest

BOUND_MS = 1000
SLACK = 2.0
MAX_CALL = 2 * 1024 * 1024
INVALID_REQUEST = 6
OTHER_CLUSTER = 11


@pytest.fixture
def streamed(make_cluster, monkeypatch):
    plain = kvstest.LocalCluster.start_server

    def start_bounded_server(self, server_id, add=True):
        argv = [kvstest.binary("kvs-server"), "-i", str(server_id), "--bind", self.host,
                "--header-timeout-ms", str(BOUND_MS), "--body-timeout-ms", str(BOUND_MS)]
        proc = self._start("server-%d" % server_id, argv, kvstest.SERVER_BASE + server_id)
        self.servers[server_id] = proc
        if add:
            assert self.frontend().addServer(server_id) == "Success"
        return proc

    monkeypatch.setattr(kvstest.LocalCluster, "start_server", start_bounded_server)
    cluster = make_cluster(servers=1, clients=0)
    monkeypatch.setattr(kvstest.LocalCluster, "start_server", plain)
    fe = xmlrpc.client.ServerProxy(cluster.frontend_url)
    for key in range(10):
        assert fe.put(key, key * 10) == "Success"
    return cluster


def text(value):
    data = value.encode()
    return struct.pack("<H", len(data)) + data


def hello(fence="0:0", version=1):
    return bytes([0, version]) + text(fence) + text("")


def connect(c):
    return socket.create_connection((c.host, kvstest.SERVER_BASE), timeout=10)


def read_reply(sock):
    """One reply: ('ok', count) or ('fault', code, message)."""
    head = recv_exactly(sock, 5)
    tag, number = head[0], struct.unpack("<i", head[1:])[0]
    if tag == 0:
        return ("ok", number)
    assert tag == 1, head
    (length,) = struct.unpack("<H", recv_exactly(sock, 2))
    return ("fault", number, recv_exactly(sock, length).decode())


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "closed after %r" % data
        data += chunk
    return data


def closed_within(sock, limit):
    """Seconds until the server closes the connection; fails past ``limit``."""
    sock.settimeout(limit)
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        pytest.fail("stream still open after %.1f s" % limit)
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def untouched_and_serving(c):
    server = xmlrpc.client.ServerProxy(c.url(kvstest.SERVER_BASE))
    assert server.printKVPairs() == "\n".join("%d:%d" % (k, k * 10) for k in range(10))
    fe = xmlrpc.client.ServerProxy(c.frontend_url)
    assert fe.put(100, 1) == "Success"
    assert fe.get(100) == "100:1"
    assert server.get(100) == "100:1"


@pytest.mark.parametrize("opening", ["preamble only", "whole hello"])
def test_a_silent_or_idle_stream_is_closed_after_the_bound(streamed, opening):
    sock = connect(streamed)
    if opening == "preamble only":
        sock.sendall(b"\x00")
    else:
        sock.sendall(hello())
        assert read_reply(sock) == ("ok", 0)
    waited = closed_within(sock, BOUND_MS / 1000 + SLACK)
    assert waited >= BOUND_MS / 1000 * 0.8
    untouched_and_serving(streamed)


def test_a_half_sent_call_is_cut_off_and_not_applied(streamed):
    sock = connect(streamed)
    sock.sendall(hello())
    assert read_reply(sock) == ("ok", 0)
    sock.sendall(struct.pack("<I", 8 + 16) + struct.pack("<Q", 0) + b"\x01\x00")
    closed_within(sock, BOUND_MS / 1000 + SLACK)
    untouched_and_serving(streamed)


def test_an_oversized_call_is_refused_before_its_body(streamed):
    sock = connect(streamed)
    sock.sendall(hello())
    assert read_reply(sock) == ("ok", 0)
    sock.sendall(struct.pack("<I", MAX_CALL + 1))
    reply = read_reply(sock)
    assert reply[:2] == ("fault", INVALID_REQUEST), reply
    assert closed_within(sock, SLACK) < 1.0
    untouched_and_serving(streamed)


def test_a_wrong_version_or_malformed_hello_is_refused(streamed):
    sock = connect(streamed)
    sock.sendall(hello(version=9))
    reply = read_reply(sock)
    assert reply[:2] == ("fault", INVALID_REQUEST), reply
    assert "version" in reply[2]
    closed_within(sock, SLACK)
    sock = connect(streamed)
    sock.sendall(b"\x00\x01" + struct.pack("<H", 60000) + b"x" * 100)
    assert closed_within(sock, SLACK) < 1.0
    untouched_and_serving(streamed)


def test_a_forged_batch_from_another_fence_is_refused(streamed):
    sock = connect(streamed)
    sock.sendall(hello(fence="0:0"))
    assert read_reply(sock) == ("ok", 0)
    forged = struct.pack("<Q", 0) + struct.pack("<iiQ", 1, 666, 1)
    sock.sendall(struct.pack("<I", len(forged)) + forged)
    reply = read_reply(sock)
    assert reply[:2] == ("fault", OTHER_CLUSTER), reply
    sock.sendall(struct.pack("<I", 5) + b"12345")
    reply = read_reply(sock)
    assert reply[:2] == ("fault", INVALID_REQUEST), reply
    sock.close()
    untouched_and_serving(streamed)
