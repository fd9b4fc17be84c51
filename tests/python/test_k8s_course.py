"""The course's own run_cluster.py deploys kvs from k8s/course (on Docker).

The course's harness (vijay03/cs380d-f23, project1: run_cluster.py and
shared/util.py, unmodified) is run with ``KVS_HOME=<repo>/k8s/course``. It
loads our pod files, substitutes ids, and calls the Kubernetes client; a
stand-in ``kubernetes`` package (written to a temporary folder, first on its
PYTHONPATH) plays those calls on Docker through ``kubelet.CoursePods``: a
pod becomes a container sharing the network namespace of one "node"
container (hostNetwork: every pod and the harness talk on that namespace's
localhost), running the pod's image, env and securityContext, with
``--pull never`` (the image is loaded, as on the course's node). The harness
itself runs inside that namespace (``nsenter -n``), so all its traffic stays
on loopback.

It then drives the course's commands through stdin, including testKVS with
a server added in the middle, and checks the printed replies and that no
``[Error`` line appears.

Needs: Docker (skips without it, fails when CI is set; docker/build.sh is
run once per session for the images), root for nsenter, and a checkout of the course's project1
folder named by the environment variable KVS_COURSE_PROJECT1 (skips without
it: the course's code is not part of this repository).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kubelet

REPO = Path(__file__).resolve().parents[2]
COURSE_HOME = REPO / "k8s" / "course"
RUN_SECONDS = 300

FAKE_KUBERNETES = '''"""Stand-in for the kubernetes client: the calls of the course's
shared/util.py, played on Docker by kubelet.CoursePods (tests only)."""
import types

import kubelet


def _load_kube_config(*args, **kwargs):
    return None


config = types.SimpleNamespace(load_kube_config=_load_kube_config)


class CoreV1Api:
    def __init__(self):
        self._pods = kubelet.CoursePods.from_env()

    def create_namespaced_pod(self, namespace, body):
        return self._pods.create(namespace, body)

    def list_namespaced_pod(self, namespace, label_selector=None):
        return self._pods.list(namespace, label_selector)

    def delete_namespaced_pod(self, name, namespace):
        return self._pods.delete(name, namespace)


class AppsV1Api:
    pass


client = types.SimpleNamespace(CoreV1Api=CoreV1Api, AppsV1Api=AppsV1Api)
'''

FAKE_STREAM = '''"""Stand-in for kubernetes.stream (imported by the course, never called here)."""


def stream(*args, **kwargs):
    raise NotImplementedError("kubernetes.stream is not played")
'''

COMMANDS = [
    "put:1:11",
    "get:1",
    "listServer",
    "addServer",
    "listServer",
    "printKVPairs:3",
    "killServer:0",
    "put:2:22",
    "get:2",
    "shutdownServer:1",
    "get:1",
    "testKVS:200:2:400:50:0:0:0:0:0",
    "testKVS:100:2:200:50:1:0:0:1:0",
    "listServer",
    "terminate",
]


def require():
    course = os.environ.get("KVS_COURSE_PROJECT1")
    if not course or not (Path(course) / "run_cluster.py").is_file():
        pytest.skip("set KVS_COURSE_PROJECT1 to a checkout of the course's project1 folder "
                    "(vijay03/cs380d-f23)")
    why = kubelet.docker_available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Docker is not usable: {why}", pytrace=False)
        pytest.skip(why)
    ok, output = kubelet.build_images_once()
    if not ok:
        pytest.fail(f"docker/build.sh failed:\n{output}", pytrace=False)
    images = {pod["metadata"]["name"]: pod["spec"]["containers"][0]["image"]
              for pod in kubelet.load_manifests(COURSE_HOME / "yaml" / "pods")}
    missing = kubelet.missing_images(sorted(images.values()))
    assert not missing, f"images {missing} are missing after docker/build.sh"
    if os.geteuid() != 0 or shutil.which("nsenter") is None:
        pytest.skip("needs root and nsenter to run the harness in the node's network namespace")
    return Path(course), images["client-pod"]


def test_course_run_cluster_deploys_kvs_from_k8s_course(tmp_path):
    course, client_image = require()
    fake = tmp_path / "fake" / "kubernetes"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_KUBERNETES)
    (fake / "stream.py").write_text(FAKE_STREAM)
    tag = "course" + os.urandom(3).hex()
    try:
        node = kubelet.start_course_node(tag, client_image)
        env = {
            **os.environ,
            "KVS_HOME": str(COURSE_HOME),
            kubelet.NODE_ENV: node,
            kubelet.TAG_ENV: tag,
            "PYTHONPATH": os.pathsep.join([str(fake.parent), str(Path(__file__).parent)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
        }
        argv = ["nsenter", "-t", str(kubelet.node_pid(node)), "-n",
                sys.executable, "run_cluster.py", "-c", "1", "-s", "3"]
        proc = subprocess.Popen(argv, cwd=course, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate("\n".join(COMMANDS) + "\n", timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"the course's run_cluster.py took more than {RUN_SECONDS} s:\n{out[-4000:]}")
        assert proc.returncode == 0, out[-4000:]
        assert "[Error" not in out and "Traceback" not in out, out[-4000:]
        replies = [line for line in out.replace("Enter a command: ", "\n").splitlines() if line.strip()]
        text = "\n".join(replies)
        # put:1:11, get:1, listServer, addServer, listServer
        assert replies.count("Success") >= 2, text
        assert "1:11" in replies and "2:22" in replies, text
        assert "0, 1, 2" in replies and "0, 1, 2, 3" in replies, text
        assert out.count("Load throughput = ") == 2 and out.count("Run throughput = ") == 2, text
        # testKVS with add=1 started server 4 through the course's pod file.
        lists = [line for line in replies if re.fullmatch(r"\d+(, \d+)*", line)]
        assert "4" in lists[-1].split(", "), text
        pods = kubelet.docker("ps", "--all", "--filter", f"label={kubelet.LABEL}={tag}",
                              "--filter", "label=kvs.course.name",
                              "--format", '{{.Label "kvs.course.name"}} {{.State}}')
        names = dict(line.split() for line in pods.splitlines())
        assert names.get("frontend-pod") == "running", pods
        assert "server-pod-0" not in names, pods  # killServer deleted it
        assert names.get("server-pod-4") == "running", pods
        assert names.get("client-pod-1") == "running", pods
    finally:
        kubelet.remove_by_label(tag)
    assert kubelet.docker("ps", "--all", "--quiet", "--filter", f"label={kubelet.LABEL}={tag}") == ""
