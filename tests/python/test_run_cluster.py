"""run_cluster.py driven through a pipe, against the real binaries.

Each run gets its own 127.0.0.N address (``--host``), its own log dir, and
``KVS_NO_BUILD=1`` (the test script builds first). After every run no
process it started may be left: checked through its ``pids`` file and by
scanning /proc for kvs binaries whose command line names the address.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

import kvstest

RUN_CLUSTER = str(kvstest.REPO / "run_cluster.py")
PROMPT = "Enter a command: "
RUN_TIMEOUT = 180

pytestmark = pytest.mark.usefixtures("binaries_built")


class Run:
    """One finished run_cluster.py: exit code, output, where its logs went."""

    def __init__(self, returncode, stdout, stderr, log_dir, host):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.log_dir = log_dir
        self.host = host

    def answers(self):
        """Output of each command, in order (stripped)."""
        return [chunk.strip() for chunk in self.stdout.split(PROMPT)[1:]]

    def __repr__(self):
        return "rc=%s\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.returncode, self.stdout[-5000:], self.stderr[-5000:])


def harness_env():
    env = dict(os.environ)
    env["KVS_NO_BUILD"] = "1"
    return env


def harness_argv(host, log_dir, clients, servers, extra=()):
    return [sys.executable, RUN_CLUSTER, "-c", str(clients), "-s", str(servers),
            "--host", host, "--log-dir", str(log_dir), "--seed", "7", *extra]


def started_pids(log_dir):
    """Pids run_cluster.py recorded in its log dir."""
    path = os.path.join(str(log_dir), "pids")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [int(line.split()[1]) for line in f if line.strip()]


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_leftovers(log_dir, host):
    """After a timeout: SIGKILL what the harness started (it is our child's child)."""
    for pid in started_pids(log_dir):
        if pid_alive(pid) and kvstest.mentions(kvstest.cmdline_of(pid), host):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def assert_nothing_left(log_dir, host):
    pids = started_pids(log_dir)
    assert pids, "run_cluster.py recorded no processes in %s" % log_dir
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if pid_alive(pid)] + kvstest.our_processes(host)
        if not alive:
            return
        time.sleep(0.1)
    kill_leftovers(log_dir, host)
    pytest.fail("processes left after run_cluster.py exited: %r" % alive)


def run_cluster(commands, tmp_path, clients=1, servers=2, timeout=RUN_TIMEOUT, extra=()):
    """Pipes commands (a list of lines) into run_cluster.py; returns a Run."""
    host = kvstest.next_host()
    log_dir = tmp_path / ("logs-" + host)
    stdin = "".join(line + "\n" for line in commands)
    proc = subprocess.Popen(harness_argv(host, log_dir, clients, servers, extra),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=harness_env())
    try:
        stdout, stderr = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        kill_leftovers(log_dir, host)
        pytest.fail("run_cluster.py timed out after %d s:\n%s" % (timeout, stdout[-3000:]))
    return Run(proc.returncode, stdout, stderr, str(log_dir), host)


# -- basic commands -------------------------------------------------------

BASIC = [
    ("put:1:11", None),
    ("get:1", "1:11"),
    ("listServer", "0, 1"),
    ("printKVPairs:0", "1:11"),
    ("addServer", re.compile(r"Success")),
    ("listServer", "0, 1, 2"),
    ("printKVPairs:2", "1:11"),
    ("killServer:0", re.compile(r"\b0\b")),
    ("get:1", "1:11"),
    ("put:2:22", None),
    ("shutdownServer:1", None),
    ("addClient", re.compile(r"\b1\b")),
    ("get:2", "2:22"),
    ("foo", "Unknown command"),
    ("get:abc", re.compile(r"^error")),
    ("put:1", re.compile(r"^error")),
    ("killServer:42", re.compile(r"^error")),
    ("printKVPairs:99", re.compile(r"^error")),
    ("shutdownServer:99", re.compile(r"^error")),
    ("get:1", "1:11"),
    ("printKVPairs:2", "1:11\n2:22"),
]


def check_answer(command, answer, expected):
    if expected is None:
        assert answer and not answer.startswith("error"), (command, answer)
    elif isinstance(expected, str):
        assert answer == expected, (command, answer)
    else:
        assert expected.search(answer), (command, answer)


def test_basic_commands(tmp_path):
    run = run_cluster([c for c, _ in BASIC] + ["listServer", "terminate"], tmp_path)
    assert run.returncode == 0, run
    answers = run.answers()
    assert len(answers) == len(BASIC) + 2, run
    for (command, expected), answer in zip(BASIC, answers):
        check_answer(command, answer, expected)
    listed = answers[len(BASIC)].split(", ")
    assert "2" in listed and "1" not in listed, run
    assert "[Error" not in run.stdout
    assert_nothing_left(run.log_dir, run.host)


def test_startup_lines_and_log_dir(tmp_path):
    run = run_cluster(["terminate"], tmp_path, clients=2, servers=3)
    assert run.returncode == 0, run
    startup = run.stdout.split(PROMPT)[0]
    for line in ("Starting the frontend...", "Starting servers...", "Starting clients..."):
        assert line in startup, run
    assert run.log_dir in startup
    names = sorted(n for n in os.listdir(run.log_dir) if n.endswith(".log"))
    assert names == ["client-0.log", "client-1.log", "frontend.log", "server-0.log",
                     "server-1.log", "server-2.log"]
    assert len(started_pids(run.log_dir)) == 6
    assert_nothing_left(run.log_dir, run.host)


def test_end_of_input_terminates(tmp_path):
    run = run_cluster(["put:1:1", "get:1"], tmp_path)
    assert run.returncode == 0, run
    assert run.answers()[1] == "1:1", run
    assert_nothing_left(run.log_dir, run.host)


def test_put_get_through_a_random_client(tmp_path):
    commands = ["put:%d:%d" % (k, k + 1) for k in range(20)] + ["get:%d" % k for k in range(20)]
    run = run_cluster(commands + ["terminate"], tmp_path, clients=3)
    answers = run.answers()
    assert answers[20:40] == ["%d:%d" % (k, k + 1) for k in range(20)], run
    assert_nothing_left(run.log_dir, run.host)


def test_no_client_put_is_an_error(tmp_path):
    run = run_cluster(["put:1:1", "addClient", "put:1:1", "get:1", "terminate"], tmp_path,
                      clients=0)
    answers = run.answers()
    assert answers[0].startswith("error"), run
    assert answers[3] == "1:1", run
    assert_nothing_left(run.log_dir, run.host)


# -- testKVS --------------------------------------------------------------

TESTKVS_MODES = [
    "testKVS:200:4:400:50:0:0:0:0:0",
    "testKVS:200:4:400:50:0:0:1:0:0",
    "testKVS:200:4:400:50:0:0:0:1:0",
    "testKVS:200:4:400:50:0:0:0:0:1",
    "testKVS:200:4:400:0:1:0:0:0:0",
    "testKVS:200:4:400:0:1:0:1:0:0",
    "testKVS:200:4:400:0:1:0:0:1:0",
    "testKVS:200:4:400:0:1:0:0:0:1",
    "testKVS:200:4:400:0:1:50:0:0:0",
    "testKVS:200:4:400:0:1:50:1:0:0",
    "testKVS:200:4:400:0:1:50:0:1:0",
    "testKVS:200:4:400:0:1:50:0:0:1",
]

THROUGHPUT = {phase: re.compile(r"^%s throughput = \d+\.\dops/sec$" % phase, re.M)
              for phase in ("Load", "Run")}


def assert_clean_test_kvs(run):
    assert run.returncode == 0, run
    assert "[Error" not in run.stdout, run
    for phase, pattern in THROUGHPUT.items():
        assert len(pattern.findall(run.stdout.replace(PROMPT, "\n"))) == 1, (phase, run)


@pytest.mark.parametrize("command", TESTKVS_MODES)
def test_testkvs_mode(tmp_path, command):
    run = run_cluster([command, "listServer", "terminate"], tmp_path, clients=1, servers=2)
    assert_clean_test_kvs(run)
    listed = run.answers()[1].split(", ")
    crash, add, remove = (int(x) for x in command.split(":")[7:10])
    if add:
        assert listed == ["0", "1", "2"], run
    if remove:
        assert listed == ["1"], run
    if crash:  # the frontend may notice the crash only later: not checked here
        assert "1" in listed, run
    assert_nothing_left(run.log_dir, run.host)


def test_testkvs_twice_then_crash_of_first_listed(tmp_path):
    """Second crash: server 0 is gone, so the first listed server is used."""
    commands = ["testKVS:100:2:200:0:1:0:1:0:0", "testKVS:100:2:200:0:1:50:1:0:0",
                "listServer", "terminate"]
    run = run_cluster(commands, tmp_path, clients=1, servers=3)
    assert run.returncode == 0, run
    assert "[Error" not in run.stdout, run
    assert run.answers()[2] == "2", run
    assert_nothing_left(run.log_dir, run.host)


def test_testkvs_reports_errors(tmp_path):
    """With every server crashed puts fail: testKVS must print [Error lines."""
    commands = ["killServer:0", "killServer:1", "testKVS:20:2:20:50:0:0:0:0:0",
                "get:abc", "terminate"]
    run = run_cluster(commands, tmp_path, clients=2, servers=2)
    assert run.returncode == 0, run
    errors = [line for line in run.stdout.replace(PROMPT, "\n").splitlines()
              if line.startswith("[Error")]
    assert len(errors) == 2, run  # one per thread, each thread stops at its first
    assert run.answers()[3].startswith("error"), run  # the loop is still alive
    assert_nothing_left(run.log_dir, run.host)


@pytest.mark.parametrize("command", ["testKVS:1:2", "testKVS:10:2:20:50:0:0:0:0:x",
                                     "testKVS:1:2:20:50:0:0:0:0:0",
                                     "testKVS:10:2:20:150:0:0:0:0:0"])
def test_testkvs_bad_arguments(tmp_path, command):
    run = run_cluster([command, "put:1:1", "get:1", "terminate"], tmp_path)
    answers = run.answers()
    assert answers[0].startswith("error"), run
    assert answers[2] == "1:1", run
    assert_nothing_left(run.log_dir, run.host)


# -- --durable: servers on data folders ---------------------------------------

DATA_LINE = re.compile(r"^Server data: (.+)/server-<id>$", re.M)
RESTART_TIMEOUT = 15


def recovered_pairs(data_dir, server_id):
    """printKVPairs of a fresh kvs-server started on ``data_dir`` (alone, on
    its own address): what that folder gives back after a restart."""
    host = kvstest.next_host()
    port = kvstest.SERVER_BASE + server_id
    log_path = os.path.join(os.path.dirname(data_dir), "restarted-%d.log" % server_id)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen([kvstest.binary("kvs-server"), "--id", str(server_id),
                                  "--bind", host, "--data-dir", data_dir],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    proc = kvstest.Proc("restarted-%d" % server_id, popen, log_path, host, port)
    try:
        kvstest.wait_for_port(proc, RESTART_TIMEOUT)
        pairs = kvstest.proxy("http://%s:%d" % (host, port)).printKVPairs()
        assert "data folder recovered" in proc.log(), proc.log()
        return pairs
    finally:
        kvstest.stop_procs([proc])


def data_root(run):
    """The folder run_cluster.py --durable announced for the servers' data."""
    match = DATA_LINE.search(run.stdout.split(PROMPT)[0])
    assert match, run
    root = match.group(1)
    assert os.path.dirname(root) == run.log_dir, root
    return root


def test_durable_servers_keep_what_they_acknowledged_on_disk(tmp_path):
    """--durable: every server logs to its own folder; a server SIGKILLed by
    killServer, started again on its folder, has every pair acknowledged
    before the kill; the cluster works as usual (testKVS clean)."""
    before = {1000 + k: 7 * k for k in range(1, 6)}
    after = {1000 + k: 7 * k for k in range(6, 9)}
    commands = ["put:%d:%d" % kv for kv in before.items()] + ["killServer:0"]
    commands += ["put:%d:%d" % kv for kv in after.items()]
    commands += ["get:1003", "testKVS:100:2:200:50:0:0:0:0:0", "printKVPairs:1", "terminate"]
    run = run_cluster(commands, tmp_path, clients=1, servers=2, extra=["--durable"])
    assert_clean_test_kvs(run)
    answers = run.answers()
    assert answers[:len(before)] == ["Success"] * len(before), run
    assert answers[len(before)] == "Killed server 0", run
    assert answers[len(before) + 1 + len(after)] == "1003:21", run
    assert_nothing_left(run.log_dir, run.host)

    root = data_root(run)
    assert sorted(os.listdir(root)) == ["server-0", "server-1"]
    for server_id in (0, 1):
        folder = os.path.join(root, "server-%d" % server_id)
        logs = [name for name in os.listdir(folder) if name.startswith("log-")]
        assert logs and any(os.path.getsize(os.path.join(folder, n)) > 0 for n in logs), folder
        # The server really ran on it (not just a folder made by the harness).
        with open(os.path.join(run.log_dir, "server-%d.log" % server_id)) as f:
            assert "dir=%s" % folder in f.read()
    # Killed after the first puts: exactly those, nothing later.
    assert recovered_pairs(os.path.join(root, "server-0"), 0) == "\n".join(
        "%d:%d" % kv for kv in sorted(before.items()))
    # Stopped at the end: everything it held, as the frontend printed it.
    printed = answers[-2]
    assert printed.count("\n") >= 100 + len(before) + len(after) - 1, run
    assert recovered_pairs(os.path.join(root, "server-1"), 1) == printed


def test_without_durable_servers_keep_no_folder(tmp_path):
    """No --durable: memory only, even with KVS_DATA_DIR in the environment
    (which names the frontend's folder; shared with two servers, the second
    one could not lock it)."""
    shared = tmp_path / "frontend-data"
    env = harness_env()
    env["KVS_DATA_DIR"] = str(shared)
    host = kvstest.next_host()
    log_dir = tmp_path / "logs"
    result = subprocess.run(harness_argv(host, log_dir, 1, 2),
                            input="put:1:1\nget:1\nlistServer\nterminate\n",
                            capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT)
    run = Run(result.returncode, result.stdout, result.stderr, str(log_dir), host)
    assert run.returncode == 0, run
    assert run.answers()[:3] == ["Success", "1:1", "0, 1"], run
    assert "Server data" not in run.stdout
    assert not [n for n in os.listdir(run.log_dir) if n.startswith("data-")]
    for server_id in (0, 1):
        with open(os.path.join(run.log_dir, "server-%d.log" % server_id)) as f:
            assert "data folder" not in f.read()
    assert_nothing_left(run.log_dir, run.host)


def test_durable_is_refused_for_the_python_baseline(tmp_path):
    result = subprocess.run([sys.executable, RUN_CLUSTER, "--impl", "python-baseline",
                             "--durable", "--log-dir", str(tmp_path / "logs")],
                            input="terminate\n", capture_output=True, text=True,
                            env=harness_env(), timeout=60)
    assert result.returncode == 2, result
    assert "--durable needs the kvs servers" in result.stderr, result
    assert not (tmp_path / "logs").exists()  # refused before anything started


def test_help_describes_durable():
    result = subprocess.run([sys.executable, RUN_CLUSTER, "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--durable" in text and "--data-dir" in text and "memory only" in text, text


# -- signals, start-up failures ---------------------------------------------

def read_until(proc, marker, timeout):
    """Reads proc's stdout (bytes) until marker shows up; returns what was read."""
    data = b""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while marker not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            part = os.read(fd, 65536)
            if not part:
                break
            data += part
    return data


def describe(proc):
    """A hung process's signal state and kernel wait channel, for failures."""
    lines = []
    try:
        with open("/proc/%d/status" % proc.pid) as f:
            lines = [line.strip() for line in f if line.startswith(("State", "Sig"))]
        with open("/proc/%d/wchan" % proc.pid) as f:
            lines.append("wchan: " + f.read())
    except OSError as exc:
        lines.append(str(exc))
    return "\n".join(lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_stops_everything(tmp_path, sig):
    host = kvstest.next_host()
    log_dir = tmp_path / "logs"
    proc = subprocess.Popen(harness_argv(host, log_dir, 2, 2), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=harness_env())
    try:
        seen = read_until(proc, PROMPT.encode(), 30)
        assert PROMPT.encode() in seen, seen
        assert len(started_pids(log_dir)) == 5
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pytest.fail("run_cluster.py still runs 15 s after %s:\n%s" % (sig, describe(proc)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        kill_leftovers(log_dir, host)
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode != 0
    assert_nothing_left(log_dir, host)


def test_port_in_use_is_a_clear_error(tmp_path):
    host = kvstest.next_host()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((host, kvstest.SERVER_BASE + 1))
    blocker.listen()
    try:
        log_dir = tmp_path / "logs"
        result = subprocess.run(harness_argv(host, log_dir, 1, 2), input="terminate\n",
                                capture_output=True, text=True, env=harness_env(), timeout=60)
    finally:
        blocker.close()
    assert result.returncode == 1, result
    assert "already in use" in result.stderr, result
    assert "%s:%d" % (host, kvstest.SERVER_BASE + 1) in result.stderr
    assert_nothing_left(log_dir, host)


def test_missing_binaries_is_a_clear_error(tmp_path):
    env = harness_env()
    env["KVS_BIN_DIR"] = str(tmp_path / "nothing-here")
    result = subprocess.run([sys.executable, RUN_CLUSTER, "-c", "1", "-s", "1",
                             "--host", kvstest.next_host(), "--log-dir", str(tmp_path / "logs")],
                            input="terminate\n",
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1, result
    assert "cargo build --release" in result.stderr, result
    assert "kvs-frontend" in result.stderr
