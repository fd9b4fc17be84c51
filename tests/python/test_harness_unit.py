"""Unit tests of kvs_cluster (run_cluster.py's package) against in-process fakes.

No binaries needed: a fake backend records what it is asked to do, and a
fake key-value store stands in for the frontend and the client proxies. The
fakes can misbehave (stale reads, failed calls) to prove that testKVS
reports wrong values with ``[Error`` lines.
"""

import sys
import threading
import xmlrpc.client

import pytest

import kvstest

sys.path.insert(0, str(kvstest.REPO))

from kvs_cluster import rpc, workload  # noqa: E402
from kvs_cluster.backend import Backend, UnknownServer  # noqa: E402
from kvs_cluster.cluster import Cluster  # noqa: E402
from kvs_cluster.commands import PROMPT, CommandLoop  # noqa: E402


class FakeStore:
    """The frontend's and the proxies' methods over one locked dict."""

    def __init__(self, stale_every=0, fail_puts=False):
        self.lock = threading.Lock()
        self.data = {}
        self.members = []
        self.gets = 0
        self.stale_every = stale_every
        self.fail_puts = fail_puts

    def put(self, key, value):
        if self.fail_puts:
            raise ConnectionRefusedError(111, "Connection refused")
        with self.lock:
            self.data[key] = value
        return "ok"

    def get(self, key):
        with self.lock:
            self.gets += 1
            if key not in self.data:
                raise xmlrpc.client.Fault(1, "key %d not found" % key)
            value = self.data[key]
            if self.stale_every and self.gets % self.stale_every == 0:
                value -= 1
        return "%d:%d" % (key, value)

    def addServer(self, server_id):
        self.members.append(server_id)
        return "Success"

    def listServer(self):
        return ", ".join(str(i) for i in sorted(self.members))

    def shutdownServer(self, server_id):
        if server_id not in self.members:
            raise xmlrpc.client.Fault(2, "unknown server %d" % server_id)
        self.members.remove(server_id)
        return "bye %d" % server_id

    def printKVPairs(self, server_id):
        if server_id not in self.members:
            raise xmlrpc.client.Fault(2, "unknown server %d" % server_id)
        return "\n".join("%d:%d" % kv for kv in sorted(self.data.items()))


class FakeBackend(Backend):
    """Records starts, crashes and stops; runs nothing."""

    def __init__(self):
        self.servers = set()
        self.clients = set()
        self.events = []
        self.lock = threading.Lock()

    def _event(self, *event):
        with self.lock:
            self.events.append(event)

    def start_frontend(self):
        self._event("frontend")

    def start_server(self, server_id):
        self.servers.add(server_id)
        self._event("server", server_id)

    def start_client(self, client_id):
        self.clients.add(client_id)
        self._event("client", client_id)

    def kill_server(self, server_id):
        if server_id not in self.servers:
            raise UnknownServer("no running server with id %d" % server_id)
        self.servers.discard(server_id)
        self._event("kill", server_id)

    def stop_server(self, server_id):
        self.servers.discard(server_id)
        self._event("stop", server_id)
        return True

    def stop_all(self):
        self.servers.clear()
        self.clients.clear()
        self._event("stop_all")
        return []

    def server_ids(self):
        return sorted(self.servers)

    def frontend_url(self):
        return "fake:frontend"

    def client_url(self, client_id):
        return "fake:client:%d" % client_id


class FakeCluster(Cluster):
    """A Cluster whose every proxy is the fake store."""

    def __init__(self, store, out):
        super().__init__(FakeBackend(), out=out)
        self.store = store

    def new_proxy(self, url):
        return self.store


def make(store=None, clients=1, servers=2):
    lines = []
    cluster = FakeCluster(store or FakeStore(), lines.append)
    cluster.start(clients, servers)
    return cluster, lines


# -- parsing ------------------------------------------------------------

def test_spec_parse():
    spec = workload.Spec.parse("200:4:400:50:0:0:1:0:0".split(":"))
    assert (spec.keys, spec.threads, spec.requests, spec.put_ratio, spec.crash) == \
        (200, 4, 400, 50, 1)
    assert spec.per_thread == 100


@pytest.mark.parametrize("args", ["1:2", "200:4:400:50:0:0:1:0:x", "3:4:10:0:0:0:0:0:0",
                                  "10:0:10:0:0:0:0:0:0", "10:2:10:101:0:0:0:0:0",
                                  "10:2:10:0:2:0:0:0:0", "10:2:10:0:0:-1:0:0:0",
                                  "10:2:10:0:0:0:2:0:0", "10:2:-1:0:0:0:0:0:0",
                                  "2000000000:2:10:0:0:0:0:0:0"])
def test_spec_parse_rejects(args):
    with pytest.raises(ValueError):
        workload.Spec.parse(args.split(":"))


def test_parse_pair():
    assert rpc.parse_pair("12:-3") == (12, -3)
    for bad in ("12", "1:2:3", "a:b", 5):
        with pytest.raises(ValueError):
            rpc.parse_pair(bad)


# -- testKVS against a correct store ------------------------------------

MODES = ["200:4:400:50:0:0:0:0:0", "200:4:400:50:0:0:1:0:0", "200:4:400:50:0:0:0:1:0",
         "200:4:400:50:0:0:0:0:1", "200:4:400:0:1:0:0:0:0", "200:4:400:0:1:0:1:0:0",
         "200:4:400:0:1:50:0:0:0", "200:4:400:0:1:50:0:0:1", "200:4:400:100:0:0:0:0:0",
         "7:3:10:30:0:0:0:0:0"]


@pytest.mark.parametrize("mode", MODES)
def test_workload_clean(mode):
    cluster, lines = make()
    spec = workload.Spec.parse(mode.split(":"))
    workload.run_test_kvs(cluster, spec, lines.append, seed=3)
    assert not [line for line in lines if line.startswith("[Error")], lines
    assert sum(line.startswith("Load throughput = ") for line in lines) == 1
    assert sum(line.startswith("Run throughput = ") for line in lines) == 1
    assert cluster.client_ids() == list(range(spec.threads))
    events = cluster.backend.events
    assert (("kill", 0) in events) == bool(spec.crash)
    assert (("server", 2) in events) == bool(spec.add)
    assert (("stop", 0) in events) == bool(spec.remove)


def test_workload_loads_a_permutation():
    store = FakeStore()
    cluster, lines = make(store)
    workload.run_test_kvs(cluster, workload.Spec.parse("100:4:0:0:0:0:0:0:0".split(":")),
                          lines.append, seed=1)
    assert sorted(store.data) == list(range(100))
    assert sorted(store.data.values()) == list(range(100))


def test_disruption_falls_back_to_first_listed_server():
    cluster, lines = make(servers=3)
    spec = workload.Spec.parse("40:2:40:0:1:0:1:0:0".split(":"))
    workload.run_test_kvs(cluster, spec, lines.append, seed=1)
    workload.run_test_kvs(cluster, spec, lines.append, seed=2)
    assert [e for e in cluster.backend.events if e[0] == "kill"] == [("kill", 0), ("kill", 1)]


# -- testKVS must report wrong values and failed calls --------------------

@pytest.mark.parametrize("mode", ["200:4:400:50:0:0:0:0:0", "200:4:400:0:1:0:0:0:0",
                                  "200:4:400:0:1:50:0:0:0"])
def test_workload_reports_stale_reads(mode):
    cluster, lines = make(FakeStore(stale_every=5))
    workload.run_test_kvs(cluster, workload.Spec.parse(mode.split(":")), lines.append, seed=5)
    errors = [line for line in lines if line.startswith("[Error")]
    assert len(errors) == 4, lines  # every thread fails once, then stops
    assert any("Run throughput" in line for line in lines)


def test_workload_reports_failed_calls():
    cluster, lines = make(FakeStore(fail_puts=True))
    workload.run_test_kvs(cluster, workload.Spec.parse("20:2:20:0:1:0:0:0:0".split(":")),
                          lines.append)
    errors = [line for line in lines if line.startswith("[Error")]
    assert len(errors) == 2 and all("ConnectionRefusedError" in e for e in errors), lines


# -- the command loop -----------------------------------------------------

def drive(cluster, commands):
    out = []
    feed = iter(commands)
    prompts = []

    def read(prompt):
        prompts.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    CommandLoop(cluster, out=out.append).run(read)
    return out, prompts


def test_command_loop_commands():
    cluster, _ = make()
    out, prompts = drive(cluster, [
        "put:1:2", "get:1", "listServer", "addServer", "listServer", "printKVPairs:2",
        "killServer:0", "shutdownServer:1", "listServer", "addClient", "nonsense", "",
        "get:abc", "put:1", "killServer:9", "shutdownServer:9", "printKVPairs:9",
        "put:1:99999999999", "testKVS:1", "get:5", "terminate", "get:1"])
    assert out == [
        "ok", "1:2", "0, 1", "Started server 2: Success", "0, 1, 2", "1:2",
        "Killed server 0", "bye 1", "0, 2", "Started client 1", "Unknown command",
        out[11], out[12], out[13], out[14], out[15], out[16], out[17], out[18]]
    assert all(line.startswith("error: ") for line in out[11:19]), out
    assert "key 5 not found" in out[18]
    assert prompts == [PROMPT] * 21  # terminate ends the loop: "get:1" is never read
    assert ("stop", 1) in cluster.backend.events


def test_command_loop_ends_at_end_of_input():
    cluster, _ = make()
    out, prompts = drive(cluster, ["get:1"])
    assert len(prompts) == 2 and out[-1] == ""


def test_ids_are_never_reused():
    cluster, _ = make(servers=2)
    cluster.kill_server(1)
    server_id, _ = cluster.add_server()
    assert server_id == 2
    assert cluster.backend.server_ids() == [0, 2]


def test_pipe_lines_reader():
    import io
    import os
    from kvs_cluster.stdin_lines import PipeLines

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"put:1:1\nget:1\nlast")
    os.close(write_fd)
    out = io.StringIO()
    with os.fdopen(read_fd, "rb") as stream:
        reader = PipeLines(stream=stream, out=out)
        assert [reader("> "), reader("> "), reader("> ")] == ["put:1:1", "get:1", "last"]
        with pytest.raises(EOFError):
            reader("> ")
    assert out.getvalue() == "> " * 4
