"""run_cluster.py --backend docker, and the images of docker/build.sh.

Needs the docker CLI and a running daemon: without them these tests are
skipped, unless ``CI`` is set, in which case they fail. A session fixture
runs ``docker/build.sh`` once (so CI builds the images); every run then
uses ``KVS_NO_BUILD=1``. Each run gets its own loopback address
127.250.N.1 (``--host``), is bounded in time, and afterwards no container,
network or volume carrying its label ``kvs.cluster=<tag>`` may remain;
teardown removes by id whatever a failed run left behind. From the host
these tests only talk to ports published on 127.x loopback addresses.
"""

import http.client
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client

import pytest

import kvstest
from kvs_cluster import backend as backend_mod
from kvs_cluster import cli, docker as docker_mod

RUN_CLUSTER = str(kvstest.REPO / "run_cluster.py")
BUILD_SH = str(kvstest.REPO / "docker" / "build.sh")
PROMPT = "Enter a command: "
RUN_TIMEOUT = 180
BUILD_TIMEOUT = 1800
DOCKER_TIMEOUT = 60
USER = "65532:65532"
TAG_RE = re.compile(r"labelled kvs\.cluster=([0-9a-f]{8})")

_host_counter = itertools.count((os.getpid() * 13) % 200)


# -- docker availability and images -------------------------------------------

def docker_missing_reason():
    """Why docker cannot be used here, or None."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker version` did not answer within 30 s"
    if result.returncode != 0:
        return "the docker daemon is not reachable: %s" % result.stderr.strip()[:300]
    return None


@pytest.fixture(scope="session")
def docker_images():
    """Docker is usable and docker/build.sh has built the images (once per session)."""
    reason = docker_missing_reason()
    if reason:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Docker is not usable: %s" % reason, pytrace=False)
        pytest.skip(reason)
    try:
        result = subprocess.run([BUILD_SH], cwd=str(kvstest.REPO), capture_output=True,
                                text=True, timeout=BUILD_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("docker/build.sh took more than %d s" % BUILD_TIMEOUT, pytrace=False)
    if result.returncode != 0:
        pytest.fail("docker/build.sh failed:\n%s\n%s" % (result.stdout[-3000:],
                                                        result.stderr[-3000:]), pytrace=False)
    return {role: docker_mod.image_name(role) for role in docker_mod.ROLES}


def docker(*args, check=True):
    """``docker ARGS`` -> stdout (bounded in time)."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True,
                            timeout=DOCKER_TIMEOUT, check=False)
    if check and result.returncode != 0:
        raise AssertionError("docker %s failed: %s" % (" ".join(args), result.stderr))
    return result.stdout.strip()


def next_host():
    """A 127.250.N.1 address with the harness's ports free."""
    for _ in range(200):
        host = "127.250.%d.1" % (10 + next(_host_counter) % 200)
        if not any(kvstest.port_open(host, port) for port in (8001, 7000, 7001, 9000, 9001)):
            return host
    raise RuntimeError("no free 127.250.N.1 address")


# -- what a run leaves ------------------------------------------------------

def labelled(tag):
    """Ids of containers, networks and volumes labelled kvs.cluster=tag."""
    label = "label=kvs.cluster=%s" % tag
    return {
        "container": docker("ps", "-a", "-q", "--no-trunc", "--filter", label).split(),
        "network": docker("network", "ls", "-q", "--no-trunc", "--filter", label).split(),
        "volume": docker("volume", "ls", "-q", "--filter", label).split(),
    }


def named(tag):
    """Networks and volumes whose name carries the run's tag (label or not)."""
    networks = docker("network", "ls", "--format", "{{.Name}}").split()
    volumes = docker("volume", "ls", "--format", "{{.Name}}").split()
    return [n for n in networks + volumes if n.startswith("kvs-%s" % tag)]


def remove_by_id(tag, log_dir):
    """Removes, by id, everything a run made (containers file + label)."""
    ids = set(labelled(tag)["container"])
    path = os.path.join(str(log_dir), "containers")
    if os.path.exists(path):
        with open(path) as f:
            ids.update(line.split()[1] for line in f if line.strip())
    if ids:
        docker("rm", "-f", "-v", *sorted(ids), check=False)
    for network in labelled(tag)["network"]:
        docker("network", "rm", network, check=False)
    for volume in labelled(tag)["volume"]:
        docker("volume", "rm", "-f", volume, check=False)


def container_ids(log_dir):
    path = os.path.join(str(log_dir), "containers")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split()[1] for line in f if line.strip()]


def assert_nothing_left(tag, log_dir):
    assert tag, "run_cluster.py did not print its docker label"
    left = labelled(tag)
    existing = [cid for cid in container_ids(log_dir)
                if docker("inspect", "--format", "{{.Id}}", cid, check=False)]
    assert not any(left.values()) and not existing and not named(tag), (
        "left behind by run %s: %r, containers %r, names %r"
        % (tag, left, existing, named(tag)))


class Runs:
    """The runs of one test: their tags and log dirs, cleaned up in teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.made = []

    def log_dir(self, host):
        path = self.tmp_path / ("docker-" + host)
        path.mkdir(exist_ok=True)
        return path

    def track(self, stdout, log_dir):
        match = TAG_RE.search(stdout)
        tag = match.group(1) if match else None
        self.made.append((tag, log_dir))
        return tag

    def cleanup(self):
        for tag, log_dir in self.made:
            if tag:
                remove_by_id(tag, log_dir)
            elif container_ids(log_dir):
                docker("rm", "-f", "-v", *container_ids(log_dir), check=False)


@pytest.fixture
def runs(tmp_path, docker_images):
    tracker = Runs(tmp_path)
    yield tracker
    tracker.cleanup()


def harness_env():
    env = dict(os.environ)
    env["KVS_NO_BUILD"] = "1"
    return env


def harness_argv(host, log_dir, clients, servers, extra=()):
    return [sys.executable, RUN_CLUSTER, "-c", str(clients), "-s", str(servers),
            "--backend", "docker", "--host", host, "--log-dir", str(log_dir), "--seed", "7",
            *extra]


def answers(stdout):
    """Output of each command, in order (stripped)."""
    return [chunk.strip() for chunk in stdout.split(PROMPT)[1:]]


def run_piped(runs, commands, clients=1, servers=2, timeout=RUN_TIMEOUT):
    """Pipes commands into run_cluster.py --backend docker; returns (rc, stdout, stderr, tag)."""
    host = next_host()
    log_dir = runs.log_dir(host)
    proc = subprocess.Popen(harness_argv(host, log_dir, clients, servers),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=harness_env())
    try:
        stdout, stderr = proc.communicate("".join(c + "\n" for c in commands), timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        runs.track(stdout, log_dir)
        pytest.fail("run_cluster.py timed out after %d s:\n%s\n%s"
                    % (timeout, stdout[-3000:], stderr[-3000:]))
    tag = runs.track(stdout, log_dir)
    assert_nothing_left(tag, log_dir)
    return proc.returncode, stdout, stderr, tag


# -- interactive runs --------------------------------------------------------

class Interactive:
    """run_cluster.py --backend docker driven line by line through a pipe."""

    def __init__(self, runs, clients, servers, extra=()):
        self.host = next_host()
        self.log_dir = runs.log_dir(self.host)
        self.runs = runs
        self.proc = subprocess.Popen(harness_argv(self.host, self.log_dir, clients, servers, extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=harness_env())
        self.seen = b""
        self.tag = None

    def read_prompt(self, timeout=RUN_TIMEOUT):
        """Output up to the next prompt (decoded); fails the test on timeout or exit."""
        marker = PROMPT.encode()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        data = b""
        while marker not in data and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                part = os.read(fd, 65536)
                if not part:
                    break
                data += part
        self.seen += data
        if self.tag is None:
            self.tag = self.runs.track(self.seen.decode(errors="replace"), self.log_dir)
        if marker not in data:
            pytest.fail("no prompt within %.0f s; output so far:\n%s\nstderr:\n%s"
                        % (timeout, self.seen.decode(errors="replace")[-3000:], self.stderr()))
        return data.decode(errors="replace").split(marker.decode())[0].strip()

    def command(self, line, timeout=RUN_TIMEOUT):
        """Sends one command; returns its output."""
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        return self.read_prompt(timeout)

    def stderr(self):
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-3000:]

    def finish(self, timeout=60):
        """Ends the run (if still running); returns its exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"terminate\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("run_cluster.py did not exit within %d s of terminate" % timeout)
        finally:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                stream.close()


@pytest.fixture
def interactive(runs):
    """Factory: interactive(clients, servers) -> a started Interactive at its first prompt."""
    started = []

    def start(clients=1, servers=2, extra=()):
        run = Interactive(runs, clients, servers, extra)
        started.append(run)
        run.read_prompt()
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


class TimeoutTransport(xmlrpc.client.Transport):
    """Python's stock transport, with a socket timeout so a test cannot hang."""

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = 20
        return conn


def python_proxy(url):
    return xmlrpc.client.ServerProxy(url, transport=TimeoutTransport())


# -- the tests ---------------------------------------------------------------

def test_acceptance_partition_heal_kill(runs):
    commands = ["put:1:1", "partitionServer:0", "put:1:2", "get:1", "healServer:0",
                "killServer:1", "get:1", "terminate"]
    started = time.monotonic()
    rc, stdout, stderr, _tag = run_piped(runs, commands, clients=1, servers=3)
    assert rc == 0, (stdout, stderr)
    got = answers(stdout)
    assert got[:7] == ["Success", "Partitioned server 0", "Success", "1:2", "Healed server 0",
                       "Killed server 1", "1:2"], (got, stderr)
    assert stdout.count("1:2") == 2
    assert time.monotonic() - started < RUN_TIMEOUT


def test_python_xmlrpc_reaches_published_ports(interactive):
    run = interactive(clients=1, servers=2)
    frontend = python_proxy("http://%s:8001" % run.host)
    client = python_proxy("http://%s:7000" % run.host)
    assert frontend.put(5, 55) == "Success"
    assert frontend.get(5) == "5:55"
    assert frontend.listServer() == "0, 1"
    assert client.put(6, 66) == "Success"
    assert client.get(6) == "6:66"
    assert client.get(5) == "5:55"
    assert run.command("get:6") == "6:66"
    assert run.command("addServer") == "Started server 2: Success"
    assert frontend.listServer() == "0, 1, 2"
    assert frontend.printKVPairs(2) == "5:55\n6:66"
    assert run.command("shutdownServer:1") == "[Server 1] shutting down"  # exited by itself
    assert frontend.listServer() == "0, 2"
    assert run.finish() == 0
    assert_nothing_left(run.tag, run.log_dir)


def test_pause_resume_and_frontend_restart_keep_acknowledged_values(runs):
    values = {key: key * 10 + 1 for key in range(1, 9)}
    commands = ["put:%d:%d" % (k, values[k]) for k in range(1, 5)]
    commands += ["pauseServer:0"]
    commands += ["put:%d:%d" % (k, values[k]) for k in range(5, 7)]
    commands += ["get:1", "resumeServer:0", "put:7:%d" % values[7],
                 "killFrontend", "restartFrontend"]
    commands += ["get:%d" % k for k in range(1, 8)]
    commands += ["put:8:%d" % values[8], "get:8", "pauseServer:1", "killFrontend",
                 "restartFrontend", "resumeServer:1"]
    commands += ["get:%d" % k for k in range(1, 9)]
    rc, stdout, stderr, _tag = run_piped(runs, commands, clients=2, servers=2)
    assert rc == 0, (stdout, stderr)
    got = answers(stdout)
    assert got[:len(commands)] == (
        ["Success"] * 4 + ["Paused server 0"] + ["Success"] * 2
        + ["1:11", "Resumed server 0", "Success", "Killed frontend", "Restarted frontend"]
        + ["%d:%d" % (k, values[k]) for k in range(1, 8)]
        + ["Success", "8:81", "Paused server 1", "Killed frontend", "Restarted frontend",
           "Resumed server 1"]
        + ["%d:%d" % (k, values[k]) for k in range(1, 9)]), (got, stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_everything(interactive, sig):
    run = interactive(clients=2, servers=2)
    assert len(container_ids(run.log_dir)) == 5
    assert len(labelled(run.tag)["container"]) == 5
    run.proc.send_signal(sig)
    try:
        run.proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("run_cluster.py still runs 60 s after %s" % sig)
    assert run.proc.returncode != 0
    for stream in (run.proc.stdin, run.proc.stdout, run.proc.stderr):
        stream.close()
    assert_nothing_left(run.tag, run.log_dir)


def test_ctrl_c_during_start_up_removes_everything(runs):
    host = next_host()
    log_dir = runs.log_dir(host)
    proc = subprocess.Popen(harness_argv(host, log_dir, 3, 3), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness_env())
    seen = b""
    deadline = time.monotonic() + 60
    while b"Starting servers" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout.fileno()], [], [], 0.2)
        if ready:
            part = os.read(proc.stdout.fileno(), 65536)
            if not part:
                break
            seen += part
    time.sleep(0.3)  # somewhere in the middle of starting the servers
    proc.send_signal(signal.SIGINT)
    try:
        stdout, _stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, _stderr = proc.communicate()
    tag = runs.track((seen + stdout).decode(errors="replace"), log_dir)
    assert proc.returncode != 0
    assert_nothing_left(tag, log_dir)


def test_port_in_use_is_a_clear_error(runs):
    host = next_host()
    log_dir = runs.log_dir(host)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((host, 9001))
    blocker.listen()
    try:
        result = subprocess.run(harness_argv(host, log_dir, 1, 2), input="terminate\n",
                                capture_output=True, text=True, env=harness_env(),
                                timeout=RUN_TIMEOUT)
    finally:
        blocker.close()
    tag = runs.track(result.stdout, log_dir)
    assert result.returncode == 1, result
    assert "%s:9001 is already in use" % host in result.stderr, result
    assert_nothing_left(tag, log_dir)


def test_missing_images_name_build_sh(runs):
    host = next_host()
    log_dir = runs.log_dir(host)
    env = harness_env()
    env["KVS_IMAGE_VERSION"] = "0.0.0-not-built"
    result = subprocess.run(harness_argv(host, log_dir, 1, 1), input="terminate\n",
                            capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
    tag = runs.track(result.stdout, log_dir)
    assert result.returncode == 1, result
    assert "kvs-frontend:0.0.0-not-built" in result.stderr, result
    assert "docker/build.sh" in result.stderr
    assert_nothing_left(tag, log_dir)


def test_images_are_non_root_scratch_with_labels(docker_images):
    version = docker_mod.workspace_version()
    for role, image in docker_images.items():
        assert image == "kvs-%s:%s" % (role, version)
        info = json.loads(docker("image", "inspect", image))[0]
        config = info["Config"]
        assert config["User"] == USER, (image, config["User"])
        assert "KVS_BIND=0.0.0.0" in config["Env"]
        assert config["Entrypoint"] == ["/kvs-%s" % role]
        assert not config.get("Cmd")
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"]
        # The source label names the git remote when there is one, and is
        # absent otherwise (never an invented URL).
        assert labels.get("org.opencontainers.image.source") == git_remote(), labels
        assert len(info["RootFS"]["Layers"]) <= 2, "FROM scratch: binary (+ /data) only"


def git_remote():
    result = subprocess.run(["git", "-C", str(kvstest.REPO), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True)
    return result.stdout.strip() or None


def wait_health(host, port, cid, timeout=20.0):
    """Waits until GET /health on host:port answers 200; fails with the container's logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_mod.health_ok(host, port):
            return
        time.sleep(0.1)
    pytest.fail("no /health on %s:%d within %.0f s; logs:\n%s"
                % (host, port, timeout, docker("logs", cid, check=False)))


@pytest.fixture
def hand_made():
    """Containers and volumes a test starts by hand, removed by id afterwards."""
    made = {"containers": [], "volumes": []}
    yield made
    if made["containers"]:
        docker("rm", "-f", "-v", *made["containers"], check=False)
    for volume in made["volumes"]:
        docker("volume", "rm", "-f", volume, check=False)


HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def test_hardened_server_container_answers_health(docker_images, hand_made):
    host = next_host()
    cid = docker("run", "-d", *HARDENED, "--label", "kvs.test=hand-made",
                 "-e", "SERVER_ID=0", "-p", "%s:9000:9000" % host, docker_images["server"])
    hand_made["containers"].append(cid)
    wait_health(host, 9000, cid)
    conn = http.client.HTTPConnection(host, 9000, timeout=10)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    state = json.loads(docker("inspect", cid))[0]
    assert state["Config"]["User"] == USER
    assert state["HostConfig"]["ReadonlyRootfs"] is True
    assert state["HostConfig"]["CapDrop"] == ["ALL"]


def test_frontend_writes_a_fresh_named_volume_as_non_root(docker_images, hand_made):
    host = next_host()
    volume = "kvs-test-%d-%d" % (os.getpid(), int(time.time()))
    docker("volume", "create", "--label", "kvs.test=hand-made", volume)
    hand_made["volumes"].append(volume)
    cid = docker("run", "-d", *HARDENED, "--label", "kvs.test=hand-made",
                 "-v", "%s:/data" % volume, "-e", "KVS_DATA_DIR=/data",
                 "-p", "%s:8001:8001" % host, docker_images["frontend"])
    hand_made["containers"].append(cid)
    wait_health(host, 8001, cid)
    assert python_proxy("http://%s:8001" % host).listServer() == ""


def test_durable_servers_keep_their_pairs_on_their_volumes(interactive, hand_made):
    """--durable: each server has a labelled volume of its own at /data
    (KVS_DATA_DIR); it outlives a killServer, and a server started on it
    recovers every acknowledged pair; on exit nothing of the run is left."""
    run = interactive(clients=1, servers=2, extra=["--durable"])
    assert "Server data: volume kvs-%s-server-<id>-data" % run.tag in run.seen.decode()
    volumes = ["kvs-%s-server-%d-data" % (run.tag, server_id) for server_id in (0, 1)]
    labelled_volumes = set(docker("volume", "ls", "-q", "--filter",
                                  "label=kvs.cluster=%s" % run.tag).split())
    assert labelled_volumes == {*volumes, "kvs-%s-frontend-data" % run.tag}
    servers = docker("ps", "-q", "--no-trunc", "--filter", "label=kvs.cluster=%s" % run.tag,
                     "--filter", "label=kvs.role=server").split()
    assert len(servers) == 2
    for cid in servers:
        info = json.loads(docker("inspect", cid))[0]
        server_id = int(dict(e.split("=", 1) for e in info["Config"]["Env"])["SERVER_ID"])
        assert "KVS_DATA_DIR=/data" in info["Config"]["Env"]
        mounts = [(m["Type"], m.get("Name"), m["Destination"], m["RW"]) for m in info["Mounts"]]
        assert mounts == [("volume", volumes[server_id], "/data", True)], mounts
        assert info["HostConfig"]["ReadonlyRootfs"] is True  # the volume is the only place written

    pairs = {2000 + k: 3 * k for k in range(1, 6)}
    for key, value in pairs.items():
        assert run.command("put:%d:%d" % (key, value)) == "Success"
    assert run.command("killServer:0") == "Killed server 0"
    assert run.command("put:2010:30") == "Success"
    assert run.command("get:2003") == "2003:9"
    assert volumes[0] in docker("volume", "ls", "-q").split()  # outlives its container

    # A server started on the killed one's volume recovers what it acknowledged.
    host = next_host()
    cid = docker("run", "-d", *HARDENED, "--label", "kvs.test=hand-made",
                 "-v", "%s:/data" % volumes[0], "-e", "KVS_DATA_DIR=/data",
                 "-e", "SERVER_ID=0", "-p", "%s:9000:9000" % host, docker_mod.image_name("server"))
    hand_made["containers"].append(cid)
    wait_health(host, 9000, cid)
    assert python_proxy("http://%s:9000" % host).printKVPairs() == "\n".join(
        "%d:%d" % kv for kv in sorted(pairs.items()))
    logs = subprocess.run(["docker", "logs", cid], capture_output=True, text=True,
                          timeout=DOCKER_TIMEOUT, check=False)
    assert "data folder recovered dir=/data keys=%d" % len(pairs) in logs.stderr, logs
    docker("rm", "-f", cid)  # before the run's clean-up removes the volume
    hand_made["containers"].remove(cid)

    out = run.command("testKVS:100:2:200:50:0:0:0:0:0")
    assert "[Error" not in out and "Run throughput" in out, out
    assert run.finish() == 0
    assert_nothing_left(run.tag, run.log_dir)


# -- no docker needed ----------------------------------------------------------

def test_local_backend_refuses_docker_only_faults():
    from kvs_cluster.local import make_backend
    local = make_backend("local", "rust", "127.0.0.1")
    for method in ("partition_server", "heal_server", "pause_server", "resume_server"):
        with pytest.raises(backend_mod.NotSupported, match="--backend docker"):
            getattr(local, method)(0)
    with pytest.raises(backend_mod.NotSupported):
        local.kill_frontend()


def test_durable_flag_parsing_and_the_python_baseline(capsys):
    from kvs_cluster.local import make_backend
    with pytest.raises(SystemExit):
        cli.parse_args(["--durable", "--impl", "python-baseline"])
    assert "--durable needs the kvs servers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--durable"):
        make_backend("local", "python-baseline", "127.0.0.1", durable=True)
    assert cli.parse_args(["--durable", "--backend", "docker"]).durable is True
    assert cli.parse_args([]).durable is False


def test_baseline_impl_needs_the_local_backend(capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(["--backend", "docker", "--impl", "python-baseline"])
    assert "only with --backend local" in capsys.readouterr().err


def test_no_docker_cli_is_one_clear_error(tmp_path):
    env = harness_env()
    env["PATH"] = str(tmp_path / "empty-path")
    result = subprocess.run([sys.executable, RUN_CLUSTER, "-c", "1", "-s", "1",
                             "--backend", "docker", "--host", "127.250.250.1",
                             "--log-dir", str(tmp_path / "logs")],
                            input="terminate\n", capture_output=True, text=True, env=env,
                            timeout=60)
    assert result.returncode == 1, result
    assert "docker CLI is not installed" in result.stderr, result
    assert "clean-up" not in result.stderr, result
