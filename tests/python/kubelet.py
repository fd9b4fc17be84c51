"""Play the kubelet on Docker: run the pods of k8s/production without Kubernetes.

Reads the production manifests and starts, for a StatefulSet ordinal or a
Deployment replica, one container from that pod template's own image, env,
ports, securityContext and resource limits, on a Docker network of its own:

- env ``valueFrom.fieldRef`` is resolved as the kubelet would
  (``metadata.name``, ``metadata.namespace``,
  ``metadata.labels['apps.kubernetes.io/pod-index']`` and other labels);
- DNS is played by network aliases: a StatefulSet pod is
  ``<pod>.<serviceName>.<ns>.svc.cluster.local`` (and the shorter forms a
  pod's search path would complete), and every Service selecting the pod
  adds ``<service>.<ns>.svc.cluster.local`` (Docker answers an alias held by
  several containers with all of them, much like a headless Service; a
  ClusterIP Service's ready-only routing is not modelled);
- ``runAsUser``/``runAsGroup`` become ``--user``, ``readOnlyRootFilesystem``
  ``--read-only``, dropped capabilities ``--cap-drop``,
  ``allowPrivilegeEscalation: false`` ``no-new-privileges``, limits
  ``--memory``/``--cpus``;
- a volumeClaimTemplate becomes a named volume per pod (kept when the pod
  is deleted, as a claim is), so a replacement pod gets the same data;
- a ``secret`` volume becomes a directory of files written on the host from
  the Secrets given to the Kubelet (standing for the Secrets in the
  namespace: the manifests hold no value), one file per ``items`` entry (or
  per key), bind-mounted read-only at the mount's ``mountPath``. As the
  kubelet does, the files are root's with ``defaultMode``/``mode``, and with
  the pod's ``fsGroup`` they belong to that group and are group-readable;
  ``fsGroup`` and ``supplementalGroups`` are also the container's
  supplementary groups (``--group-add``). A Secret or key that does not exist
  (and is not ``optional``) raises KubeletError, where Kubernetes would keep
  the pod in ContainerCreating. The files are removed with the pod. Giving
  the files to group ``fsGroup`` needs root (or CAP_CHOWN) on the host.
- every container port is published on 127.0.0.1 only (a random host port):
  the host talks to containers through loopback, never to their own IPs, and
  probes are HTTP GETs of the probe's path through that port;
- deleting a pod is ``docker stop`` with its terminationGracePeriodSeconds
  (SIGTERM, then SIGKILL), then ``docker rm``.

Everything created carries the label ``kvs.kubelet=<tag>`` and is removed by
id in ``close()``, which also removes the host folder of the secret files.
Standard library and PyYAML only.
"""

import http.client
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from secrets import token_hex

import yaml

LABEL = "kvs.kubelet"
DOCKER_SECONDS = 60.0
POD_INDEX = "apps.kubernetes.io/pod-index"


class KubeletError(RuntimeError):
    """A docker command failed, or a manifest uses something not played here."""


def docker(*args, timeout=DOCKER_SECONDS, check=True):
    """``docker ARGS`` -> stdout (stripped); KubeletError on failure."""
    argv = ["docker", *args]
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout, check=False)
    except FileNotFoundError:
        raise KubeletError("the docker CLI is not installed") from None
    except subprocess.TimeoutExpired:
        raise KubeletError(f"`{' '.join(argv)}` took more than {timeout:.0f} s") from None
    if check and result.returncode != 0:
        raise KubeletError(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout.strip()


def docker_available():
    """None if the docker daemon answers, else why not."""
    try:
        docker("version", "--format", "{{.Server.Version}}", timeout=20)
        return None
    except KubeletError as exc:
        return str(exc)


REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "docker" / "build.sh"
BUILD_SECONDS = 1800
_build_result = None


def build_images_once():
    """Runs docker/build.sh once per process (docker's and cargo's caches make
    a repeat cheap), so the images hold the current code. Returns (ok, output
    tail). KVS_SKIP_IMAGE_BUILD=1 uses the images as they are."""
    global _build_result
    if os.environ.get("KVS_SKIP_IMAGE_BUILD") == "1":
        return True, "KVS_SKIP_IMAGE_BUILD=1"
    if _build_result is None:
        try:
            r = subprocess.run([str(BUILD_SH)], cwd=REPO, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=BUILD_SECONDS, check=False)
            _build_result = (r.returncode == 0, (r.stdout[-2000:] + r.stderr[-3000:]).strip())
        except subprocess.TimeoutExpired:
            _build_result = (False, f"{BUILD_SH} took more than {BUILD_SECONDS} s")
    return _build_result


def missing_images(images):
    return [i for i in images if docker("image", "inspect", "--format", "{{.Id}}", i, check=False) == ""]


def load_manifests(folder):
    """Every object of every *.yaml/*.yml in folder (kustomization files aside)."""
    objs = []
    for path in sorted(Path(folder).iterdir()):
        if path.suffix in (".yaml", ".yml") and not path.name.startswith("kustomization"):
            with open(path) as f:
                objs.extend(d for d in yaml.safe_load_all(f) if d)
    return objs


def memory_bytes(quantity):
    """A Kubernetes memory quantity ("128Mi", "1Gi", "500M", "1024") in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "": 1}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    if not m or m.group(2) not in units:
        raise KubeletError(f"memory quantity {quantity!r} not understood")
    return int(float(m.group(1)) * units[m.group(2)])


def cpus(quantity):
    """A Kubernetes CPU quantity ("100m", "1", "2.5") in CPUs."""
    q = str(quantity)
    return int(q[:-1]) / 1000 if q.endswith("m") else float(q)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass
class Pod:
    """One container standing in for one pod."""

    name: str
    workload: dict
    labels: dict
    cid: str = ""
    ports: dict = field(default_factory=dict)  # container port name -> host port
    volumes: list = field(default_factory=list)
    secret_dir: str = ""  # host folder of this pod's secret volumes

    @property
    def container(self):
        return self.workload["spec"]["template"]["spec"]["containers"][0]

    def host_port(self, port):
        """Loopback port for a container port given by name or number."""
        if isinstance(port, int):
            for p in self.container["ports"]:
                if p["containerPort"] == port:
                    port = p["name"]
        return self.ports[port]


class Kubelet:
    """Runs pods of the manifests in ``folder`` on a Docker network of its own.

    ``secrets`` stands for the Secrets that exist in the pods' namespace:
    ``{secret name: {key: value}}``. It may be changed between two pod
    starts (an updated Secret reaches the pods started afterwards; a running
    pod keeps the files it started with here)."""

    def __init__(self, folder, tag=None, secrets=None):
        self.objects = load_manifests(folder)
        self.tag = tag or token_hex(4)
        self.network = f"kvs-kubelet-{self.tag}"
        self.network_id = None
        self.pods = {}
        self.volumes = []
        self.deployment_replicas = {}
        self.secrets = {name: dict(data) for name, data in (secrets or {}).items()}
        self.secret_root = None  # host folder holding every pod's secret files

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self):
        self.network_id = docker("network", "create", "--label", f"{LABEL}={self.tag}", self.network)
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Removes every container, volume and the network this kubelet made, by id."""
        errors = []
        for pod in list(self.pods.values()):
            try:
                docker("rm", "--force", pod.cid, timeout=30)
            except KubeletError as exc:
                errors.append(str(exc))
        self.pods.clear()
        if self.secret_root:
            shutil.rmtree(self.secret_root, ignore_errors=True)
            self.secret_root = None
        # Anything labelled for this run whose `docker run` returned no id.
        leftover = docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.tag}", check=False)
        for cid in leftover.split():
            docker("rm", "--force", cid, check=False, timeout=30)
        for volume in self.volumes:
            try:
                docker("volume", "rm", "--force", volume, timeout=30)
            except KubeletError as exc:
                errors.append(str(exc))
        self.volumes.clear()
        if self.network_id:
            try:
                docker("network", "rm", self.network_id, timeout=30)
            except KubeletError as exc:
                errors.append(str(exc))
            self.network_id = None
        if errors:
            raise KubeletError("; ".join(errors))

    # -- manifests -----------------------------------------------------------

    def find(self, kind, name):
        for o in self.objects:
            if o["kind"] == kind and o["metadata"]["name"] == name:
                return o
        raise KubeletError(f"no {kind}/{name} in the manifests")

    def services_for(self, labels, namespace):
        return [o for o in self.objects if o["kind"] == "Service"
                and o["metadata"].get("namespace") == namespace
                and selects(o["spec"].get("selector", {}), labels)]

    @staticmethod
    def _dns_forms(name, namespace):
        return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                f"{name}.{namespace}.svc.cluster.local"]

    def aliases(self, workload, pod_name, labels):
        ns = workload["metadata"]["namespace"]
        names = []
        if workload["kind"] == "StatefulSet":
            names += self._dns_forms(f"{pod_name}.{workload['spec']['serviceName']}", ns)
        for svc in self.services_for(labels, ns):
            names += self._dns_forms(svc["metadata"]["name"], ns)
        return list(dict.fromkeys(names))

    @staticmethod
    def resolve_env(container, pod_name, namespace, labels):
        env = {}
        for entry in container.get("env", []):
            if "value" in entry:
                env[entry["name"]] = str(entry["value"])
                continue
            path = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            m = re.fullmatch(r"metadata\.labels\['([^']+)'\]", path or "")
            if path == "metadata.name":
                env[entry["name"]] = pod_name
            elif path == "metadata.namespace":
                env[entry["name"]] = namespace
            elif m and m.group(1) in labels:
                env[entry["name"]] = labels[m.group(1)]
            else:
                raise KubeletError(f"env {entry['name']}: {entry.get('valueFrom')} is not played here")
        return env

    # -- pods ----------------------------------------------------------------

    def start_statefulset_pod(self, name, ordinal):
        """Creates pod <name>-<ordinal> of StatefulSet <name> (like a scale-up)."""
        sts = self.find("StatefulSet", name)
        pod_name = f"{name}-{ordinal}"
        labels = dict(sts["spec"]["template"]["metadata"].get("labels", {}))
        labels[POD_INDEX] = str(ordinal)
        labels["statefulset.kubernetes.io/pod-name"] = pod_name
        claims = []
        for tmpl in sts["spec"].get("volumeClaimTemplates", []):
            claims.append((tmpl["metadata"]["name"], f"kvs-kubelet-{self.tag}-{tmpl['metadata']['name']}-{pod_name}"))
        return self._start(sts, pod_name, labels, claims)

    def start_deployment_pod(self, name):
        """Creates one more replica of Deployment <name>."""
        dep = self.find("Deployment", name)
        n = self.deployment_replicas.get(name, 0)
        self.deployment_replicas[name] = n + 1
        labels = dict(dep["spec"]["template"]["metadata"].get("labels", {}))
        return self._start(dep, f"{name}-{self.tag}-{n}", labels, [])

    def _start(self, workload, pod_name, labels, claims):
        if pod_name in self.pods:
            raise KubeletError(f"pod {pod_name} exists")
        ns = workload["metadata"]["namespace"]
        spec = workload["spec"]["template"]["spec"]
        if len(spec["containers"]) != 1 or spec.get("initContainers"):
            raise KubeletError("only one-container pods are played here")
        if spec.get("hostNetwork"):
            raise KubeletError("hostNetwork is not played here")
        c = spec["containers"][0]
        pod_sc = spec.get("securityContext", {})
        sc = {**pod_sc, **c.get("securityContext", {})}
        argv = ["run", "--detach", "--name", f"kvs-kubelet-{self.tag}-{pod_name}",
                "--label", f"{LABEL}={self.tag}", "--network", self.network,
                "--hostname", pod_name]
        for alias in self.aliases(workload, pod_name, labels):
            argv += ["--network-alias", alias]
        if "runAsUser" in sc:
            argv += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        if sc.get("readOnlyRootFilesystem"):
            argv.append("--read-only")
        for cap in sc.get("capabilities", {}).get("drop", []):
            argv += ["--cap-drop", cap]
        if sc.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        if sc.get("privileged"):
            raise KubeletError("privileged pods are not played here")
        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            argv += ["--memory", str(memory_bytes(limits["memory"]))]
        if "cpu" in limits:
            argv += ["--cpus", f"{min(cpus(limits['cpu']), float(os.cpu_count() or 1)):.2f}"]
        for group in [pod_sc.get("fsGroup"), *pod_sc.get("supplementalGroups", [])]:
            if group is not None:
                argv += ["--group-add", str(group)]
        for key, value in sorted(self.resolve_env(c, pod_name, ns, labels).items()):
            argv += ["--env", f"{key}={value}"]
        # Secret volumes first: a missing Secret stops the pod before anything is made.
        pod_volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claim_volumes = dict(claims)
        secret_dir = self._write_secret_volumes(pod_name, pod_volumes, c, pod_sc)
        for m in c.get("volumeMounts", []):
            if m.get("subPath") or m.get("subPathExpr"):
                raise KubeletError(f"{pod_name}: subPath mounts are not played here")
            ro = ",readonly" if m.get("readOnly") else ""
            if m["name"] in claim_volumes:
                volume = claim_volumes[m["name"]]
                if volume not in self.volumes:
                    docker("volume", "create", "--label", f"{LABEL}={self.tag}", volume)
                    self.volumes.append(volume)
                argv += ["--mount", f"type=volume,source={volume},target={m['mountPath']}{ro}"]
            elif "secret" in pod_volumes.get(m["name"], {}):
                # A secret volume is always read-only in Kubernetes.
                source = os.path.join(secret_dir, m["name"])
                argv += ["--mount", f"type=bind,source={source},target={m['mountPath']},readonly"]
            else:
                raise KubeletError(f"{pod_name}: volume {m['name']} is neither a claim nor a secret: not played here")
        for p in c.get("ports", []):
            argv += ["--publish", f"127.0.0.1::{p['containerPort']}"]
        image = c["image"]
        if c.get("imagePullPolicy") == "IfNotPresent":
            argv += ["--pull", "never"]  # no registry: the image is loaded, or this fails
        argv.append(image)
        argv += c.get("command", []) + c.get("args", [])
        try:
            cid = docker(*argv)
        except KubeletError:
            if secret_dir:
                shutil.rmtree(secret_dir, ignore_errors=True)
            raise
        pod = Pod(pod_name, workload, labels, cid=cid, secret_dir=secret_dir)
        self.pods[pod_name] = pod
        for p in c.get("ports", []):
            try:
                out = docker("port", cid, f"{p['containerPort']}/tcp")
            except KubeletError:
                # A container that exited at once has no published port.
                state = docker("inspect", "--format", "{{.State.Status}}", cid, check=False)
                raise KubeletError(f"{pod_name}: no port {p['containerPort']} published "
                                   f"(container {state}):\n{self.logs(pod)}") from None
            host, _, port = out.splitlines()[0].rpartition(":")
            if host not in ("127.0.0.1",):
                raise KubeletError(f"{pod_name}: port published on {host}, not loopback")
            pod.ports[p["name"]] = int(port)
        return pod

    def _write_secret_volumes(self, pod_name, pod_volumes, container, pod_sc):
        """Writes the files of the pod's secret volumes under a fresh host
        folder (one subfolder per volume), as the kubelet would project them.
        Returns the folder ("" if the pod has no secret volume)."""
        wanted = [v for v in pod_volumes.values() if "secret" in v]
        unknown = [n for n, v in pod_volumes.items() if "secret" not in v]
        if unknown:
            raise KubeletError(f"{pod_name}: volumes {unknown} are not played here")
        if not wanted:
            return ""
        mounted = {m["name"] for m in container.get("volumeMounts", [])}
        files = {}  # volume name -> [(path, value, mode)]
        for v in wanted:
            src = v["secret"]
            data = self.secrets.get(src["secretName"])
            if data is None:
                if src.get("optional"):
                    files[v["name"]] = []
                    continue
                raise KubeletError(f"{pod_name}: Secret {src['secretName']} does not exist: "
                                   "the pod would wait in ContainerCreating")
            default_mode = src.get("defaultMode", 0o644)
            items = src.get("items") or [{"key": k, "path": k} for k in sorted(data)]
            entries = []
            for item in items:
                if item["key"] not in data:
                    if src.get("optional"):
                        continue
                    raise KubeletError(f"{pod_name}: Secret {src['secretName']} has no key {item['key']}: "
                                       "the pod would wait in ContainerCreating")
                path = item["path"]
                if "/" in path or path in ("", ".", ".."):
                    raise KubeletError(f"{pod_name}: secret item path {path!r} is not played here")
                entries.append((path, data[item["key"]], item.get("mode", default_mode)))
            files[v["name"]] = entries
        if self.secret_root is None:
            self.secret_root = tempfile.mkdtemp(prefix=f"kvs-kubelet-{self.tag}-")
        folder = tempfile.mkdtemp(prefix=f"{pod_name}-", dir=self.secret_root)
        fs_group = pod_sc.get("fsGroup")
        try:
            for name, entries in files.items():
                if name not in mounted:
                    continue
                vdir = os.path.join(folder, name)
                os.mkdir(vdir, 0o700)
                for path, value, mode in entries:
                    target = os.path.join(vdir, path)
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(value.encode() if isinstance(value, str) else value)
                    if fs_group is not None:
                        # The kubelet gives the files to fsGroup and adds group read.
                        os.chown(target, 0, fs_group)
                        mode |= 0o440
                    os.chmod(target, mode)
                if fs_group is not None:
                    os.chown(vdir, 0, fs_group)
                    os.chmod(vdir, 0o2750)
                else:
                    os.chmod(vdir, 0o755)
        except PermissionError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise KubeletError(f"{pod_name}: cannot give the secret files to fsGroup {fs_group} "
                               f"as the kubelet does (needs root or CAP_CHOWN): {exc}") from None
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder

    @staticmethod
    def _forget_secret_files(pod):
        if pod.secret_dir:
            shutil.rmtree(pod.secret_dir, ignore_errors=True)

    def delete_pod(self, pod_name):
        """SIGTERM, up to terminationGracePeriodSeconds, SIGKILL; then removed."""
        pod = self.pods.pop(pod_name)
        grace = pod.workload["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
        docker("stop", "--time", str(grace), pod.cid, timeout=grace + 30)
        logs = self.logs(pod)
        docker("rm", "--force", pod.cid)
        self._forget_secret_files(pod)
        return logs

    def kill_pod(self, pod_name):
        """SIGKILL (a crash), then removed."""
        pod = self.pods.pop(pod_name)
        docker("rm", "--force", pod.cid)
        self._forget_secret_files(pod)

    @staticmethod
    def logs(pod, tail=200):
        result = subprocess.run(["docker", "logs", "--tail", str(tail), pod.cid],
                                capture_output=True, text=True, timeout=DOCKER_SECONDS, check=False)
        return result.stdout + result.stderr

    # -- probes ----------------------------------------------------------------

    @staticmethod
    def http_get(port, path, timeout=2.0):
        """Status of GET path on 127.0.0.1:port (None if no answer)."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def probe(self, pod, kind):
        """True if the container's <kind> (e.g. "readinessProbe") succeeds now."""
        get = pod.container[kind]["httpGet"]
        timeout = pod.container[kind].get("timeoutSeconds", 1)
        return self.http_get(pod.host_port(get["port"]), get["path"], timeout) == 200

    def wait_probe(self, pod, kind, timeout):
        """Waits (bounded) until the probe succeeds; KubeletError with the logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.probe(pod, kind):
                return
            state = docker("inspect", "--format", "{{.State.Status}}", pod.cid, check=False)
            if state in ("exited", "dead"):
                raise KubeletError(f"{pod.name} exited before its {kind} passed:\n{self.logs(pod)}")
            time.sleep(0.25)
        raise KubeletError(f"{pod.name}: {kind} did not pass within {timeout} s:\n{self.logs(pod)}")


# -- the course's cluster: one node, hostNetwork pods ---------------------------

NODE_ENV = "KVS_KUBELET_NODE"
TAG_ENV = "KVS_KUBELET_TAG"
NODE_LABELS = {"role": "general"}  # the course labels its one node so (kubectl label nodes)
PAUSE_PORT = 65000  # the node's own placeholder process listens here


def start_course_node(tag, image):
    """The course's one node: a container with no network but loopback,
    whose network namespace every hostNetwork pod shares (so, as on the
    course's node, the pods reach each other on localhost). Its process, a
    kvs-client (``image``) on 127.0.0.1:65000, only holds the namespace. Returns its id."""
    return docker("run", "--detach", "--name", f"kvs-course-{tag}-node",
                  "--label", f"{LABEL}={tag}", "--network", "none",
                  "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                  "--env", "CLIENT_ID=0", "--env", f"KVS_CLIENT_PORT={PAUSE_PORT}",
                  "--env", "KVS_BIND=127.0.0.1", "--pull", "never", image)


def node_pid(node_cid):
    """Host pid of the node's process (for ``nsenter -t PID -n``)."""
    return int(docker("inspect", "--format", "{{.State.Pid}}", node_cid))


def remove_by_label(tag):
    """Removes every container and network labelled kvs.kubelet=<tag>, by id."""
    for cid in docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}={tag}", check=False).split():
        docker("rm", "--force", cid, check=False, timeout=30)
    for nid in docker("network", "ls", "--quiet", "--filter", f"label={LABEL}={tag}", check=False).split():
        docker("network", "rm", nid, check=False, timeout=30)


def _ns(**kwargs):
    import types
    return types.SimpleNamespace(**kwargs)


class CoursePods:
    """The pod calls the course's run_cluster.py makes (through shared/util.py),
    played on Docker on the node above: create, list by label selector with a
    phase, delete. Used by a stand-in ``kubernetes`` package the harness
    imports instead of the real client."""

    def __init__(self, node_cid, tag):
        self.node = node_cid
        self.tag = tag

    @classmethod
    def from_env(cls):
        return cls(os.environ[NODE_ENV], os.environ[TAG_ENV])

    def create(self, namespace, body):
        meta, spec = body["metadata"], body["spec"]
        name = meta["name"]
        if not spec.get("hostNetwork"):
            raise KubeletError(f"{name}: the course's harness reaches pods on localhost: hostNetwork needed")
        node_selector = spec.get("nodeSelector") or {}
        if node_selector and not selects(node_selector, NODE_LABELS):
            raise KubeletError(f"{name}: nodeSelector {spec['nodeSelector']} matches no node")
        if body.get("spec", {}).get("imagePullSecrets"):
            raise KubeletError(f"{name}: no registry here, no pull secret to use")
        c = spec["containers"][0]
        if c.get("imagePullPolicy") != "IfNotPresent":
            raise KubeletError(f"{name}: imagePullPolicy {c.get('imagePullPolicy')} would pull from a registry")
        sc = c.get("securityContext", {})
        if sc.get("privileged"):
            raise KubeletError(f"{name}: privileged pods are not played here")
        argv = ["run", "--detach", "--name", f"kvs-course-{self.tag}-{name}",
                "--label", f"{LABEL}={self.tag}", "--label", f"kvs.course.ns={namespace}",
                "--label", f"kvs.course.name={name}",
                "--network", f"container:{self.node}", "--pull", "never"]
        for key, value in meta.get("labels", {}).items():
            argv += ["--label", f"kvs.course.label.{key}={value}"]
        if "runAsUser" in sc:
            argv += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        if sc.get("allowPrivilegeEscalation") is False:
            argv += ["--security-opt", "no-new-privileges"]
        for entry in c.get("env", []):
            argv += ["--env", f"{entry['name']}={entry['value']}"]
        argv.append(c["image"])
        argv += c.get("command", []) + c.get("args", [])
        docker(*argv)
        return _ns(metadata=_ns(name=name))

    def _containers(self, namespace, label_selector):
        argv = ["ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.tag}",
                "--filter", f"label=kvs.course.ns={namespace}"]
        for term in filter(None, (label_selector or "").split(",")):
            key, _, value = term.partition("=")
            argv += ["--filter", f"label=kvs.course.label.{key.strip()}={value.strip()}"]
        return docker(*argv).split()

    def list(self, namespace, label_selector=None):
        items = []
        for cid in self._containers(namespace, label_selector):
            out = docker("inspect", "--format",
                         '{{index .Config.Labels "kvs.course.name"}} {{.State.Status}} {{.State.ExitCode}}',
                         cid, check=False)
            if not out:
                continue  # removed meanwhile
            name, state, code = out.split()
            phase = {"created": "Pending", "running": "Running", "restarting": "Running",
                     "paused": "Running"}.get(state, "Succeeded" if code == "0" else "Failed")
            items.append(_ns(metadata=_ns(name=name),
                             status=_ns(phase=phase, pod_ip="127.0.0.1")))
        return _ns(items=items)

    def delete(self, name, namespace, grace=30):
        """Deleting a pod: SIGTERM, SIGKILL after the grace period, gone."""
        cids = docker("ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.tag}",
                      "--filter", f"label=kvs.course.ns={namespace}",
                      "--filter", f"label=kvs.course.name={name}").split()
        if not cids:
            raise KubeletError(f"pod {name} not found")
        for cid in cids:
            docker("stop", "--time", str(grace), cid, timeout=grace + 30)
            docker("rm", "--force", cid)
        return _ns(metadata=_ns(name=name))
