"""The Docker backend of run_cluster.py: one container per role.

Each run makes its own user-defined bridge network ``kvs-<tag>`` (``tag``:
8 random hex digits) and one container per role from the images of
``docker/build.sh`` (``kvs-frontend:VERSION``, ...), each with its own IP:

- the frontend (network alias ``frontend``) reaches server ``id`` at
  ``http://server-<id>:<9000+id>`` and keeps its epoch and membership in a
  per-run named volume mounted at ``/data``, so ``restartFrontend`` recovers;
- server ``id`` has the alias ``server-<id>``; with ``--durable`` it keeps
  its pairs in a named volume of its own, ``kvs-<tag>-server-<id>-data``
  mounted at ``/data`` (``KVS_DATA_DIR``), made when that id first starts
  and kept while the run lasts (a container killed and started again under
  the id finds its data); client ``id`` talks to ``http://frontend:8001``;
- the harness-facing ports are published on ``--host`` only (frontend 8001,
  client i 7000+i, server i 9000+i), so Python's tools reach them there.

Every container runs ``--read-only --cap-drop ALL --security-opt
no-new-privileges``, carries the label ``kvs.cluster=<tag>`` and is tracked
by its id. A container is up once ``GET /health`` on its published port
answers 200 (docker's userland proxy accepts TCP connections before the
process listens, so an open port proves nothing). ``stop_all`` stops and
removes every container, the network and the volumes by id (plus anything
else carrying the run's label, e.g. a container whose ``docker run`` was
interrupted), after saving each container's ``docker logs`` in the log dir.

Only the standard library: everything goes through the ``docker`` CLI.
"""

import http.client
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from dataclasses import dataclass

from . import build, ports, procs, rpc
from .backend import Backend, UnknownServer

LABEL = "kvs.cluster"
FRONTEND_ALIAS = "frontend"
DATA_DIR = "/data"
DOCKER_CALL_SECONDS = 60.0
BUILD_SECONDS = 1800.0
RESTART_WAIT_SECONDS = 40.0
#: the fault a restarted frontend answers until it has recovered
NOT_RECOVERED = 14
STOP_GRACE_SECONDS = 5
BUILD_SCRIPT = os.path.join(build.REPO_ROOT, "docker", "build.sh")
HARDENING = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")
ROLES = ("frontend", "server", "client")


class DockerError(procs.StartError):
    """The docker CLI is missing, a docker command failed, or an image is missing."""


@dataclass
class Container:
    """One container this backend made."""

    name: str
    cid: str
    port: int
    role: str


def workspace_version(cargo_toml=os.path.join(build.REPO_ROOT, "Cargo.toml")):
    """``version`` of ``[workspace.package]`` in Cargo.toml (the image tag)."""
    section = None
    with open(cargo_toml, encoding="utf-8") as f:
        for raw in f:
            line = raw.split("#", 1)[0].strip()
            if line.startswith("["):
                section = line
            elif section == "[workspace.package]" and line.startswith("version"):
                key, _, value = line.partition("=")
                if key.strip() == "version":
                    return value.strip().strip('"')
    raise DockerError("no [workspace.package] version in %s" % cargo_toml)


def image_name(role, version=None):
    """``kvs-<role>:<version>``."""
    return "kvs-%s:%s" % (role, version or os.environ.get("KVS_IMAGE_VERSION")
                          or workspace_version())


def docker(*args, timeout=DOCKER_CALL_SECONDS, check=True):
    """Runs ``docker ARGS``; returns its stdout stripped, DockerError if it fails.

    The CLI runs in its own session, so a Ctrl-C at the terminal reaches
    only run_cluster.py. A Ctrl-C or SIGTERM that lands while a docker
    command runs lets that command finish (bounded) before it propagates:
    killing ``docker run`` half-way could leave a container the clean-up
    would not yet see.
    """
    argv = ["docker", *args]
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
    except FileNotFoundError:
        raise DockerError("the docker CLI is not installed (not in PATH)") from None
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except (KeyboardInterrupt, SystemExit):
        finish_quietly(child, timeout)
        raise
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise DockerError("`%s` took more than %.0f s" % (" ".join(argv), timeout)) from None
    if check and child.returncode != 0:
        raise DockerError("`%s` failed (exit code %d): %s"
                          % (" ".join(argv), child.returncode, stderr.strip()))
    return stdout.strip()


def finish_quietly(child, timeout):
    """Lets an interrupted docker command finish; kills it after ``timeout`` s."""
    try:
        child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()


def docker_ok(*args, timeout=DOCKER_CALL_SECONDS):
    """True if ``docker ARGS`` exits with 0 (its output is dropped)."""
    try:
        docker(*args, timeout=timeout)
        return True
    except DockerError:
        return False


def health_ok(host, port, timeout=0.5):
    """True if ``GET /health`` on host:port answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class DockerBackend(Backend):
    """Every role in its own container on a per-run Docker network."""

    name = "docker"

    def __init__(self, host="127.0.0.1", log_dir=None,
                 startup_timeout=procs.PORT_WAIT_SECONDS, durable=False):
        self.host = host
        self.durable = durable
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="kvs-docker-")
        os.makedirs(self.log_dir, exist_ok=True)
        self.startup_timeout = startup_timeout
        self.tag = secrets.token_hex(4)
        self.network = "kvs-%s" % self.tag
        self.volume = "kvs-%s-frontend-data" % self.tag
        self.label = "%s=%s" % (LABEL, self.tag)
        self._lock = threading.Lock()
        self._network_id = None
        self._volume_made = False
        self._server_volumes = {}  # server id -> volume name (--durable), once asked for
        self._made_anything = False  # set before the first docker call that creates
        self._frontend = None
        self._servers = {}
        self._clients = {}
        self._paused = set()
        self._partitioned = set()
        self._all = []
        self._stopped = False

    # -- Backend -----------------------------------------------------------

    def describe(self):
        text = ("Docker: network %s, containers labelled %s (`docker ps --filter label=%s`); "
                "logs: `docker logs kvs-%s-frontend` (or -server-N, -client-N), saved to %s "
                "when the cluster stops"
                % (self.network, self.label, self.label, self.tag, self.log_dir))
        if self.durable:
            text += ("\nServer data: volume %s at %s in each server (removed on exit)"
                     % (self.server_volume("<id>"), DATA_DIR))
        return text

    def server_volume(self, server_id):
        """Name of server ``server_id``'s data volume (``--durable``)."""
        return "kvs-%s-server-%s-data" % (self.tag, server_id)

    def prepare(self):
        if shutil.which("docker") is None:
            raise DockerError("the docker CLI is not installed (not in PATH)")
        docker("version", "--format", "{{.Server.Version}}", timeout=20)
        if os.environ.get("KVS_NO_BUILD") != "1":  # KVS_BIN_DIR is about local binaries
            self._build_images()
        self._require_images()
        self._made_anything = True
        self._network_id = docker("network", "create", "--driver", "bridge",
                                  "--label", self.label, self.network)
        docker("volume", "create", "--label", self.label, self.volume)
        self._volume_made = True

    def start_frontend(self):
        env = {"KVS_SERVER_URL": "http://server-{id}:{port}", "KVS_DATA_DIR": DATA_DIR}
        self._frontend = self._run("frontend", "frontend", ports.FRONTEND_PORT, env,
                                   aliases=[FRONTEND_ALIAS],
                                   extra=["--volume", "%s:%s" % (self.volume, DATA_DIR)])

    def start_server(self, server_id):
        env = {"SERVER_ID": str(server_id)}
        extra = []
        if self.durable:
            env["KVS_DATA_DIR"] = DATA_DIR
            extra = ["--volume", "%s:%s" % (self._server_volume_made(server_id), DATA_DIR)]
        container = self._run("server", "server-%d" % server_id, ports.server_port(server_id),
                              env, aliases=[server_alias(server_id)], extra=extra)
        with self._lock:
            self._servers[server_id] = container

    def start_client(self, client_id):
        env = {"CLIENT_ID": str(client_id),
               "KVS_FRONTEND_URL": "http://%s:%d" % (FRONTEND_ALIAS, ports.FRONTEND_PORT)}
        container = self._run("client", "client-%d" % client_id, ports.client_port(client_id),
                              env)
        with self._lock:
            self._clients[client_id] = container

    def kill_server(self, server_id):
        container = self._take_server(server_id)
        self._unpause(container)
        docker("kill", "--signal", "KILL", container.cid)

    def stop_server(self, server_id):
        container = self._take_server(server_id)
        self._unpause(container)
        try:
            docker("wait", container.cid, timeout=procs.STOP_GRACE_SECONDS)
            return True
        except DockerError:
            docker("kill", "--signal", "KILL", container.cid, check=False)
            return False

    def stop_all(self):
        with self._lock:
            if self._stopped:
                return []
            self._stopped = True
            if not self._made_anything:
                return []
            containers = list(reversed(self._all))
            paused = list(self._paused)
            self._servers.clear()
            self._clients.clear()
            self._paused.clear()
        for cid in paused:
            docker("unpause", cid, check=False)
        killed = self._stop_containers(containers)
        self._save_logs(containers)
        self._remove_everything(containers)
        return killed

    def server_ids(self):
        with self._lock:
            return sorted(self._servers)

    def frontend_url(self):
        return ports.url(self.host, ports.FRONTEND_PORT)

    def client_url(self, client_id):
        return ports.url(self.host, ports.client_port(client_id))

    # -- faults only this backend can make -----------------------------------

    def partition_server(self, server_id):
        """Cuts server ``server_id`` off the network (it keeps running)."""
        container = self._server(server_id)
        with self._lock:
            if server_id in self._partitioned:
                raise ValueError("server %d is already partitioned" % server_id)
        docker("network", "disconnect", self._network_id, container.cid)
        with self._lock:
            self._partitioned.add(server_id)

    def heal_server(self, server_id):
        """Reconnects a partitioned server under its alias."""
        container = self._server(server_id)
        with self._lock:
            if server_id not in self._partitioned:
                raise ValueError("server %d is not partitioned" % server_id)
        docker("network", "connect", "--alias", server_alias(server_id),
               self._network_id, container.cid)
        with self._lock:
            self._partitioned.discard(server_id)

    def pause_server(self, server_id):
        """Freezes every process of server ``server_id`` (docker pause)."""
        container = self._server(server_id)
        with self._lock:
            if container.cid in self._paused:
                raise ValueError("server %d is already paused" % server_id)
        docker("pause", container.cid)
        with self._lock:
            self._paused.add(container.cid)

    def resume_server(self, server_id):
        """Thaws a paused server."""
        container = self._server(server_id)
        with self._lock:
            if container.cid not in self._paused:
                raise ValueError("server %d is not paused" % server_id)
        docker("unpause", container.cid)
        with self._lock:
            self._paused.discard(container.cid)

    def kill_frontend(self):
        """SIGKILLs the frontend container (its volume stays)."""
        container = self._require_frontend()
        if not self._running(container):
            raise ValueError("the frontend is not running (use restartFrontend)")
        docker("kill", "--signal", "KILL", container.cid)

    def restart_frontend(self):
        """Starts the frontend container again on the same volume; waits until it serves.

        A restarted frontend listens while it recovers from the servers,
        answering fault 14 (not recovered) meanwhile, so this waits, up to
        max(--startup-timeout, 40 s) in all, until ``clusterStatus`` answers.
        """
        container = self._require_frontend()
        if self._running(container):
            raise ValueError("the frontend is running (use killFrontend first)")
        docker("start", container.cid)
        deadline = time.monotonic() + max(self.startup_timeout, RESTART_WAIT_SECONDS)
        self._wait_up(container, deadline - time.monotonic())
        self._wait_recovered(container, deadline)

    def _wait_recovered(self, container, deadline):
        """Waits until the frontend answers ``clusterStatus`` without fault 14."""
        frontend = rpc.proxy(self.frontend_url(), timeout=5.0)
        last = "no answer"
        while True:
            try:
                frontend.clusterStatus()
                return
            except xmlrpc.client.Fault as exc:
                if exc.faultCode != NOT_RECOVERED:
                    raise
                last = rpc.describe_error(exc)
            except rpc.CALL_ERRORS as exc:
                last = rpc.describe_error(exc)
            if time.monotonic() >= deadline:
                raise procs.StartError("%s did not recover in time; last answer: %s\n%s"
                                       % (container.name, last, self._log_tail(container)))
            time.sleep(0.1)

    # -- images ------------------------------------------------------------

    @staticmethod
    def _build_images():
        print("Building: %s (set KVS_NO_BUILD=1 to skip)" % BUILD_SCRIPT, flush=True)
        try:
            result = subprocess.run([BUILD_SCRIPT], cwd=build.REPO_ROOT,
                                    stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=None,
                                    timeout=BUILD_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise build.BuildError("%s took more than %.0f s" % (BUILD_SCRIPT, BUILD_SECONDS)) \
                from None
        if result.returncode != 0:
            raise build.BuildError("%s failed (exit code %d); see its output above"
                                   % (BUILD_SCRIPT, result.returncode))

    @staticmethod
    def _require_images():
        missing = [image_name(role) for role in ROLES
                   if not docker_ok("image", "inspect", "--format", "{{.Id}}", image_name(role))]
        if missing:
            raise DockerError("missing images: %s; run docker/build.sh (or unset KVS_NO_BUILD)"
                              % ", ".join(missing))

    # -- containers --------------------------------------------------------

    def _run(self, role, name, port, env, aliases=(), extra=()):
        """``docker run -d`` one hardened container; returns it once it serves."""
        if self._network_id is None:
            raise DockerError("prepare() has not made the network yet")
        if procs.port_open(self.host, port):
            raise procs.StartError("%s:%d is already in use (is another cluster running "
                                   "on this address?)" % (self.host, port))
        argv = ["run", "--detach", "--name", "kvs-%s-%s" % (self.tag, name),
                "--label", self.label, "--label", "kvs.role=%s" % role,
                *HARDENING, "--network", self.network,
                "--publish", "%s:%d:%d" % (self.host, port, port)]
        for alias in aliases:
            argv += ["--network-alias", alias]
        for key, value in sorted({"RUST_LOG": "info", **env}.items()):
            argv += ["--env", "%s=%s" % (key, value)]
        secret = rpc.cluster_secret()
        if secret is not None:
            # By name only: docker takes the value from this process's
            # environment, so the secret is not on the command line.
            os.environ.setdefault(rpc.SECRET_ENV, secret)
            argv += ["--env", rpc.SECRET_ENV]
        argv += [*extra, image_name(role)]
        cid = docker(*argv)
        container = Container(name, cid, port, role)
        with self._lock:
            self._all.append(container)
        self._record(container)
        self._wait_up(container, self.startup_timeout)
        return container

    def _wait_up(self, container, timeout):
        """Waits until GET /health answers on the published port; StartError if not."""
        deadline = time.monotonic() + timeout
        next_check = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if health_ok(self.host, container.port):
                return
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 0.5
                if not self._running(container):
                    raise procs.StartError("%s exited before serving %s:%d\n%s"
                                           % (container.name, self.host, container.port,
                                              self._log_tail(container)))
            time.sleep(0.05)
        raise procs.StartError("%s did not serve %s:%d within %.0f s\n%s"
                               % (container.name, self.host, container.port, timeout,
                                  self._log_tail(container)))

    @staticmethod
    def _running(container):
        state = docker("inspect", "--format", "{{.State.Running}}", container.cid, check=False)
        return state == "true"

    @staticmethod
    def _log_tail(container, lines=procs.TAIL_LINES):
        """The last lines of a container's logs, indented, for error messages."""
        try:
            result = subprocess.run(["docker", "logs", "--tail", str(lines), container.cid],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace",
                                    timeout=DOCKER_CALL_SECONDS, check=False,
                                    start_new_session=True)
        except subprocess.TimeoutExpired:
            return "  (docker logs %s took more than %.0f s)" % (container.name,
                                                              DOCKER_CALL_SECONDS)
        tail = result.stdout.splitlines()
        header = "  --- last %d lines of docker logs %s ---" % (len(tail), container.name)
        return "\n".join([header] + ["  " + line for line in tail])

    def _record(self, container):
        """Appends ``name id`` to <log dir>/containers (for tests and diagnostics)."""
        with open(os.path.join(self.log_dir, "containers"), "a", encoding="utf-8") as f:
            f.write("%s %s\n" % (container.name, container.cid))

    def _server(self, server_id):
        with self._lock:
            container = self._servers.get(server_id)
        if container is None:
            raise UnknownServer("no running server with id %d" % server_id)
        return container

    def _take_server(self, server_id):
        with self._lock:
            container = self._servers.pop(server_id, None)
            self._partitioned.discard(server_id)
        if container is None:
            raise UnknownServer("no running server with id %d" % server_id)
        return container

    def _require_frontend(self):
        if self._frontend is None:
            raise LookupError("no frontend was started")
        return self._frontend

    def _server_volume_made(self, server_id):
        """Server ``server_id``'s data volume; made if it does not exist yet.

        Recorded before it is made, so a ``volume create`` interrupted
        half-way is still removed (by name, and by label). Making a volume
        that exists is a no-op for docker: a server started again under its
        id gets the same volume, with its data.
        """
        volume = self.server_volume(server_id)
        with self._lock:
            self._server_volumes[server_id] = volume
        docker("volume", "create", "--label", self.label, "--label", "kvs.role=server", volume)
        return volume

    def _unpause(self, container):
        with self._lock:
            paused = container.cid in self._paused
            self._paused.discard(container.cid)
        if paused:
            docker("unpause", container.cid, check=False)

    # -- clean-up ----------------------------------------------------------

    def _labelled(self, kind):
        """Ids of every ``kind`` (container, network, volume) with the run's label."""
        listing = {"container": ("ps", "--all", "--quiet", "--no-trunc"),
                   "network": ("network", "ls", "--quiet", "--no-trunc"),
                   "volume": ("volume", "ls", "--quiet")}[kind]
        out = docker(*listing, "--filter", "label=%s" % self.label, check=False)
        return out.split()

    def _stop_containers(self, containers):
        """SIGTERM, at most STOP_GRACE_SECONDS, SIGKILL; names of the SIGKILLed."""
        running = [c for c in containers if self._running(c)]
        if not running:
            return []
        docker("stop", "--time", str(STOP_GRACE_SECONDS), *[c.cid for c in running],
               timeout=DOCKER_CALL_SECONDS, check=False)
        codes = docker("inspect", "--format", "{{.State.ExitCode}}",
                       *[c.cid for c in running], check=False).split()
        return [c.name for c, code in zip(running, codes) if code == "137"]

    def _save_logs(self, containers):
        """Writes each container's ``docker logs`` to <log dir>/<name>.log."""
        for container in containers:
            path = os.path.join(self.log_dir, container.name + ".log")
            with open(path, "ab") as log:
                try:
                    subprocess.run(["docker", "logs", container.cid], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   timeout=DOCKER_CALL_SECONDS, check=False,
                                   start_new_session=True)
                except subprocess.TimeoutExpired:
                    log.write(b"(docker logs took too long; the rest is lost)\n")

    def _remove_everything(self, containers):
        """Removes the containers, network and volume, by id; DockerError if any stays."""
        cids = [c.cid for c in containers]
        cids += [cid for cid in self._labelled("container")
                 if not any(c.startswith(cid) or cid.startswith(c) for c in cids)]
        if cids:
            docker("rm", "--force", "--volumes", *cids, check=False)
        networks = set(self._labelled("network"))
        if self._network_id:
            networks.add(self._network_id)
        for network in networks:
            docker("network", "rm", network, check=False)
        volumes = set(self._labelled("volume"))
        if self._volume_made:
            volumes.add(self.volume)
        with self._lock:
            volumes.update(self._server_volumes.values())
        for volume in volumes:
            docker("volume", "rm", "--force", volume, check=False)
        left = sum((self._labelled(kind) for kind in ("container", "network", "volume")), [])
        if left:
            raise DockerError("could not remove %s (label %s)" % (", ".join(left), self.label))


def server_alias(server_id):
    """DNS name of server ``server_id`` on the run's network."""
    return "server-%d" % server_id
