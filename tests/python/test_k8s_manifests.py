"""Offline checks of the Kubernetes manifests under k8s/.

Two kinds of check, neither needs a cluster:

* schema: every manifest (``*.yml``/``*.yaml`` under ``k8s/``, kustomization
  files aside) validates with kubernetes-validate in strict mode (unknown
  fields are errors) against Kubernetes 1.28 -- the first release with the
  ``apps.kubernetes.io/pod-index`` label the server StatefulSet takes its id
  from -- and against the newest release the installed package ships;
* structure: what kvs depends on and a schema cannot see -- images pinned to
  the workspace version of Cargo.toml, loaded into nodes (IfNotPresent, no
  pull secret); production pods without host networking or privilege, with a
  restricted securityContext, probes on /livez and /readyz, requests and
  limits, no service-link variables; the DNS names the processes use to find
  each other match the Services that publish them; the PDB and the
  NetworkPolicies select the pods they are about; the frontend and the
  servers keep their data folder (KVS_DATA_DIR) on a PersistentVolumeClaim
  of their own, the root filesystem staying read-only; they read the
  cluster secret from the Secret kvs-cluster-secret, mounted read-only and
  readable by the image's user only, while no manifest holds a secret value; and the course pods keep exactly what the
  course's run_cluster.py substitutes and waits for (and no secret: the
  course's harness cannot show one).

If kubernetes-validate is not installed the schema tests skip (and fail when
the environment variable CI is set); it is in tests/requirements.txt.
"""

import os
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
PRODUCTION = K8S / "production"
COURSE_PODS = K8S / "course" / "yaml" / "pods"
NAMESPACE = "kvs"
# The first Kubernetes release setting the pod-index label on StatefulSet pods.
MIN_KUBERNETES = "1.28.0"
IMAGE_USER = 65532
POD_INDEX_LABEL = "metadata.labels['apps.kubernetes.io/pod-index']"
# The Secret the operator creates (docs/deploy.md) and the key holding the value.
CLUSTER_SECRET = "kvs-cluster-secret"
CLUSTER_SECRET_KEY = "cluster-secret"
SECRET_ENV = "KVS_CLUSTER_SECRET"
SECRET_FILE_ENV = "KVS_CLUSTER_SECRET_FILE"


def workspace_version():
    with open(REPO / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["workspace"]["package"]["version"]


def manifest_files():
    files = sorted(
        p
        for p in K8S.rglob("*")
        if p.suffix in (".yml", ".yaml") and p.name not in ("kustomization.yaml", "kustomization.yml")
    )
    return files


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def production_objects():
    objs = []
    for path in sorted(PRODUCTION.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        objs.extend(load_docs(path))
    return objs


def course_pods():
    return {p.name: load_docs(p)[0] for p in sorted(COURSE_PODS.glob("*.yml"))}


def find(kind, name):
    matches = [o for o in production_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name} in k8s/production, found {len(matches)}"
    return matches[0]


def pod_spec(obj):
    """The pod spec of a Pod or of a workload's template (None otherwise)."""
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job"):
        return obj["spec"]["template"]["spec"]
    return None


def workloads():
    return [o for o in production_objects() if pod_spec(o) is not None]


def selects(match_labels, labels):
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def env_value(container, name):
    entry = env_of(container).get(name)
    assert entry is not None, f"container {container['name']} lacks env {name}"
    assert "value" in entry, f"env {name} of {container['name']} has no literal value"
    return entry["value"]


def component_pods(component):
    """(workload, pod template labels) of the production workload of a component."""
    found = [
        o for o in workloads()
        if o["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {component} workload, found {len(found)}"
    return found[0], found[0]["spec"]["template"]["metadata"]["labels"]


# --- schema ---------------------------------------------------------------


def kubernetes_validate():
    try:
        import kubernetes_validate as kv
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("kubernetes-validate is not installed (tests/requirements.txt)")
        pytest.skip("kubernetes-validate is not installed: pip install -r tests/requirements.txt")
    return kv


def test_manifests_exist():
    names = {p.relative_to(K8S).as_posix() for p in manifest_files()}
    for required in (
        "course/yaml/pods/frontend-pod.yml",
        "course/yaml/pods/server-pod.yml",
        "course/yaml/pods/client-pod.yml",
        "production/server-statefulset.yaml",
        "production/frontend-statefulset.yaml",
    ):
        assert required in names


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.relative_to(K8S).as_posix())
def test_strict_schema(path):
    kv = kubernetes_validate()
    versions = [MIN_KUBERNETES, kv.latest_version() + ".0"]
    docs = load_docs(path)
    assert docs, f"{path} holds no object"
    for doc in docs:
        for version in versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{path.name} {doc.get('kind')}/{doc['metadata'].get('name')} "
                            f"against {version}: {exc}", pytrace=False)


def test_strict_mode_rejects_unknown_field():
    """The validator as used here does catch a misspelt field."""
    kv = kubernetes_validate()
    workload, _ = component_pods("server")
    bad = yaml.safe_load(yaml.safe_dump(workload))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "IfNotPresent"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, MIN_KUBERNETES, strict=True)


def test_kustomization_lists_every_production_manifest():
    with open(PRODUCTION / "kustomization.yaml") as f:
        kustomization = yaml.safe_load(f)
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    present = sorted(p.name for p in PRODUCTION.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present


# --- images ---------------------------------------------------------------


def all_containers():
    """(file, pod spec, container) for every container in k8s/."""
    out = []
    for path in manifest_files():
        for doc in load_docs(path):
            spec = pod_spec(doc)
            if spec is None:
                continue
            for c in spec.get("initContainers", []) + spec["containers"]:
                out.append((path, spec, c))
    return out


def test_images_pinned_to_workspace_version_and_loaded_into_nodes():
    version = workspace_version()
    containers = all_containers()
    assert len(containers) >= 6
    for path, spec, c in containers:
        assert re.fullmatch(rf"kvs-(frontend|server|client):{re.escape(version)}", c["image"]), (
            f"{path.name}: image {c['image']} is not kvs-<role>:{version}")
        assert c.get("imagePullPolicy") == "IfNotPresent", f"{path.name}: {c['name']}"
        assert "imagePullSecrets" not in spec, f"{path.name}: no registry, no pull secret"


def test_image_role_matches_workload():
    for path, spec, c in all_containers():
        role = c["image"].split(":")[0].removeprefix("kvs-")
        assert role in path.name, f"{path.name} runs {c['image']}"


# --- production: security, probes, resources -----------------------------


def test_every_production_object_is_in_the_kvs_namespace():
    objs = production_objects()
    namespaces = [o for o in objs if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACE]
    assert namespaces[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == NAMESPACE, f"{o['kind']}/{o['metadata']['name']}"


def test_production_pods_are_unprivileged():
    assert len(workloads()) >= 2
    for w in workloads():
        name = w["metadata"]["name"]
        spec = pod_spec(w)
        assert not spec.get("hostNetwork"), name
        assert not spec.get("hostPID") and not spec.get("hostIPC"), name
        assert spec.get("automountServiceAccountToken") is False, name
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] == IMAGE_USER and pod_sc["runAsGroup"] == IMAGE_USER, name
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc.get("privileged") in (None, False), name
            assert sc["runAsNonRoot"] is True, name
            assert sc["runAsUser"] == IMAGE_USER and sc["runAsGroup"] == IMAGE_USER, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert not sc["capabilities"].get("add"), name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name


def test_no_service_links():
    """Service links would inject KVS_FRONTEND_PORT=tcp://... (Service
    kvs-frontend) and KVS_CLIENT_PORT=tcp://... (Service kvs-client), which
    are kvs's own port settings."""
    services = {o["metadata"]["name"] for o in production_objects() if o["kind"] == "Service"}
    assert {"kvs-frontend", "kvs-client"} <= services
    for w in workloads():
        assert pod_spec(w).get("enableServiceLinks") is False, w["metadata"]["name"]


def test_probes_and_resources():
    for w in workloads():
        for c in pod_spec(w)["containers"]:
            where = f"{w['metadata']['name']}/{c['name']}"
            port_names = {p["name"] for p in c["ports"]}
            for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                                ("readinessProbe", "/readyz")):
                get = c[probe]["httpGet"]
                assert get["path"] == path, f"{where} {probe}"
                assert get["port"] in port_names, f"{where} {probe} port {get['port']}"
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) >= {"cpu", "memory"}, f"{where} {kind}"


def probe_budget_s(probe):
    return probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) + probe.get("initialDelaySeconds", 0)


# --- production: the frontend, the servers, the names between them --------


def test_server_statefulset():
    sts, labels = component_pods("server")
    assert sts["kind"] == "StatefulSet" and sts["metadata"]["name"] == "kvs-server"
    assert sts["spec"]["podManagementPolicy"] in ("Parallel", "OrderedReady")
    assert selects(sts["spec"]["selector"]["matchLabels"], labels)
    c = pod_spec(sts)["containers"][0]
    env = env_of(c)
    assert env["SERVER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == POD_INDEX_LABEL
    assert env_value(c, "KVS_BIND") == "0.0.0.0"
    port = int(env_value(c, "KVS_SERVER_PORT"))
    assert [p["containerPort"] for p in c["ports"]] == [port]
    # Leaving is one call of at most 5 s to the frontend before the exit.
    assert pod_spec(sts)["terminationGracePeriodSeconds"] >= 15


def assert_data_dir_on_a_claim(workload):
    """KVS_DATA_DIR of the workload's container is the mount of one of its
    volumeClaimTemplates: writable, ReadWriteOnce, with a size, kept when
    the StatefulSet is deleted, and writable by the image's user (fsGroup);
    the root filesystem stays read-only."""
    name = workload["metadata"]["name"]
    c = pod_spec(workload)["containers"][0]
    data_dir = env_value(c, "KVS_DATA_DIR")
    templates = {t["metadata"]["name"]: t for t in workload["spec"].get("volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mount = mounts.get(data_dir)
    assert mount is not None and mount["name"] in templates, \
        f"{name}: {data_dir} is not on a PersistentVolumeClaim"
    assert not mount.get("readOnly") and not mount.get("subPath"), name
    assert mount["name"] not in {v["name"] for v in pod_spec(workload).get("volumes", [])}, \
        f"{name}: a pod volume shadows the claim {mount['name']}"
    claim = templates[mount["name"]]["spec"]
    assert claim["accessModes"] == ["ReadWriteOnce"], name
    assert claim["resources"]["requests"]["storage"], name
    assert workload["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get(
        "whenDeleted", "Retain") == "Retain", f"{name}: deleting the StatefulSet would delete the data"
    assert pod_spec(workload)["securityContext"]["fsGroup"] == IMAGE_USER, name
    assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
    return data_dir


def test_servers_keep_their_pairs_on_a_claim():
    sts, _ = component_pods("server")
    data_dir = assert_data_dir_on_a_claim(sts)
    # One claim per server (the StatefulSet makes data-kvs-server-<ordinal>).
    (template,) = sts["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    # The secret stays on its own read-only volume, outside the data folder.
    _, mount, path, _ = secret_file_of(sts)
    assert mount["mountPath"] != data_dir and not path.startswith(data_dir.rstrip("/") + "/")


def test_server_headless_service_publishes_not_ready_pods():
    sts, labels = component_pods("server")
    svc = find("Service", sts["spec"]["serviceName"])
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert selects(svc["spec"]["selector"], labels)
    server_port = int(env_value(pod_spec(sts)["containers"][0], "KVS_SERVER_PORT"))
    assert [p["port"] for p in svc["spec"]["ports"]] == [server_port]


def test_frontend_finds_servers_by_their_pod_dns_names():
    sts, _ = component_pods("server")
    fe, _ = component_pods("frontend")
    template = env_value(pod_spec(fe)["containers"][0], "KVS_SERVER_URL")
    url = urlsplit(template.replace("{id}", "7"))
    assert url.scheme == "http"
    host = url.hostname.split(".")
    # <statefulset>-<ordinal>.<governing service>.<namespace>.svc.cluster.local
    assert host[0] == f"{sts['metadata']['name']}-7"
    assert host[1] == sts["spec"]["serviceName"]
    assert host[2] == NAMESPACE
    assert ".".join(host[3:]) in ("svc", "svc.cluster.local")
    assert url.port == int(env_value(pod_spec(sts)["containers"][0], "KVS_SERVER_PORT"))
    assert "{port}" not in template  # every server pod listens on the same port


def test_servers_join_through_a_name_that_resolves_before_the_frontend_is_ready():
    """The frontend is ready only once a server is active, so the join URL
    must not go through a ready-only Service."""
    sts, _ = component_pods("server")
    fe, fe_labels = component_pods("frontend")
    url = urlsplit(env_value(pod_spec(sts)["containers"][0], "KVS_JOIN"))
    host = url.hostname.split(".")
    if host[0] == f"{fe['metadata']['name']}-0":  # the pod's own name
        host = host[1:]
        assert host[0] == fe["spec"]["serviceName"]
    svc = find("Service", host[0])
    assert host[1] == NAMESPACE
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["publishNotReadyAddresses"] is True
    assert selects(svc["spec"]["selector"], fe_labels)
    fe_port = int(env_value(pod_spec(fe)["containers"][0], "KVS_FRONTEND_PORT"))
    assert url.port == fe_port
    assert fe_port in [p["port"] for p in svc["spec"]["ports"]]


def test_frontend_statefulset_keeps_its_record_on_a_claim():
    fe, labels = component_pods("frontend")
    assert fe["kind"] == "StatefulSet" and fe["spec"]["replicas"] == 1
    assert selects(fe["spec"]["selector"]["matchLabels"], labels)
    c = pod_spec(fe)["containers"][0]
    assert_data_dir_on_a_claim(fe)
    assert "{id}" in env_value(c, "KVS_SERVER_URL")
    assert env_value(c, "KVS_BIND") == "0.0.0.0"


def test_frontend_startup_probe_allows_for_recovery():
    fe, _ = component_pods("frontend")
    c = pod_spec(fe)["containers"][0]
    recovery_s = int(env_value(c, "KVS_RECOVERY_TIMEOUT_MS")) / 1000
    assert probe_budget_s(c["startupProbe"]) >= recovery_s + 30
    # Liveness must not kill a frontend that is busy for a few seconds.
    assert probe_budget_s(c["livenessProbe"]) >= 30


def test_client_service_for_clients_is_ready_only():
    fe, fe_labels = component_pods("frontend")
    svc = find("Service", "kvs-frontend")
    assert svc["spec"].get("clusterIP") != "None"
    assert not svc["spec"].get("publishNotReadyAddresses")
    assert selects(svc["spec"]["selector"], fe_labels)
    assert [p["port"] for p in svc["spec"]["ports"]] == [8001]
    client, _ = component_pods("client")
    url = urlsplit(env_value(pod_spec(client)["containers"][0], "KVS_FRONTEND_URL"))
    assert url.hostname.split(".")[:2] == ["kvs-frontend", NAMESPACE]
    assert url.port == 8001


def test_every_service_selects_a_workload_and_names_its_port():
    for svc in (o for o in production_objects() if o["kind"] == "Service"):
        targets = [w for w in workloads()
                   if selects(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert len(targets) == 1, svc["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in pod_spec(targets[0])["containers"] for p in c["ports"]}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, f"{svc['metadata']['name']}: {p['targetPort']}"
            assert ports[p["targetPort"]] == p["port"]


def test_pdb_covers_the_servers():
    _, labels = component_pods("server")
    pdbs = [o for o in production_objects() if o["kind"] == "PodDisruptionBudget"]
    assert len(pdbs) == 1
    pdb = pdbs[0]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"].get("maxUnavailable") == 1
    _, fe_labels = component_pods("frontend")
    assert not selects(pdb["spec"]["selector"]["matchLabels"], fe_labels)


def test_network_policy_lets_only_the_frontend_reach_the_servers():
    sts, labels = component_pods("server")
    _, fe_labels = component_pods("frontend")
    _, client_labels = component_pods("client")
    policies = [o for o in production_objects() if o["kind"] == "NetworkPolicy"
                and selects(o["spec"]["podSelector"]["matchLabels"], labels)]
    assert len(policies) == 1
    spec = policies[0]["spec"]
    assert "Ingress" in spec["policyTypes"]
    port = int(env_value(pod_spec(sts)["containers"][0], "KVS_SERVER_PORT"))
    assert len(spec["ingress"]) == 1
    rule = spec["ingress"][0]
    assert [p["port"] for p in rule["ports"]] == [port]
    sources = rule["from"]
    assert all(set(s) == {"podSelector"} for s in sources)  # this namespace, pods only
    assert any(selects(s["podSelector"]["matchLabels"], fe_labels) for s in sources)
    assert not any(selects(s["podSelector"]["matchLabels"], client_labels) for s in sources)
    assert not any(selects(s["podSelector"]["matchLabels"], labels) for s in sources)


def test_network_policy_lets_servers_and_clients_reach_the_frontend():
    _, labels = component_pods("server")
    _, fe_labels = component_pods("frontend")
    _, client_labels = component_pods("client")
    policies = [o for o in production_objects() if o["kind"] == "NetworkPolicy"
                and selects(o["spec"]["podSelector"]["matchLabels"], fe_labels)]
    assert len(policies) == 1
    rules = policies[0]["spec"]["ingress"]
    for who in (labels, client_labels):
        assert any(
            any(selects(s.get("podSelector", {}).get("matchLabels", {}), who) for s in r["from"])
            and 8001 in [p["port"] for p in r["ports"]]
            for r in rules
        )


# --- production: the cluster secret --------------------------------------------


def secret_file_of(workload):
    """(volume, mount, file path) by which a workload's container reads the
    cluster secret; asserts the pieces agree."""
    name = workload["metadata"]["name"]
    spec = pod_spec(workload)
    c = spec["containers"][0]
    path = env_value(c, SECRET_FILE_ENV)
    assert SECRET_ENV not in env_of(c), f"{name}: the secret is read from the file, never given as a value"
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = [m for m in c.get("volumeMounts", [])
              if "secret" in volumes.get(m["name"], {})
              and volumes[m["name"]]["secret"]["secretName"] == CLUSTER_SECRET]
    assert len(mounts) == 1, f"{name}: expected one mount of Secret {CLUSTER_SECRET}, found {len(mounts)}"
    mount = mounts[0]
    volume = volumes[mount["name"]]["secret"]
    assert mount.get("readOnly") is True, name
    assert not mount.get("subPath") and not mount.get("subPathExpr"), name
    directory = mount["mountPath"].rstrip("/")
    assert path.startswith(directory + "/"), f"{name}: {SECRET_FILE_ENV}={path} is not under {directory}"
    relative = path[len(directory) + 1:]
    items = volume.get("items")
    if items:
        projected = {i["path"]: i for i in items}
        assert relative in projected, f"{name}: {relative} is not projected from the Secret"
        assert projected[relative]["key"] == CLUSTER_SECRET_KEY, name
        mode = projected[relative].get("mode", volume.get("defaultMode", 0o644))
    else:
        assert relative == CLUSTER_SECRET_KEY, name
        mode = volume.get("defaultMode", 0o644)
    return volume, mount, path, mode


@pytest.mark.parametrize("component", ["frontend", "server"])
def test_frontend_and_servers_read_the_cluster_secret_from_the_secret(component):
    workload, _ = component_pods(component)
    assert workload["kind"] == "StatefulSet"
    volume, mount, path, mode = secret_file_of(workload)
    # Fail closed: no Secret (or no key) keeps the pod from starting, rather
    # than starting a process without a secret or with an unreadable file.
    assert volume.get("optional") is not True
    # The file is root's; the pod's fsGroup makes it readable by the image's
    # user through its group, and nobody else may read it.
    spec = pod_spec(workload)
    assert spec["securityContext"]["fsGroup"] == IMAGE_USER
    assert spec["securityContext"]["runAsGroup"] == IMAGE_USER
    assert mode & 0o040, f"group read missing from mode {mode:o}"
    assert not mode & 0o007, f"mode {mode:o} lets others read the secret"
    assert not mode & 0o222, f"mode {mode:o} makes the secret writable"
    # Not under a path the process writes (/data), and not the root.
    assert not path.startswith("/data") and mount["mountPath"] not in ("/", "/data")


def test_both_statefulsets_read_the_same_secret_file():
    paths = {secret_file_of(component_pods(c)[0])[2] for c in ("frontend", "server")}
    assert len(paths) == 1, paths


def test_client_proxy_gets_no_secret():
    """put and get are open: the client proxy needs no secret, so it is not given one."""
    client, _ = component_pods("client")
    spec = pod_spec(client)
    c = spec["containers"][0]
    assert not {SECRET_ENV, SECRET_FILE_ENV} & set(env_of(c))
    assert not any("secret" in v for v in spec.get("volumes", []))


def walk(node):
    """Every dict and list inside a loaded YAML document, itself included."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        yield from walk(child)


def test_no_manifest_holds_a_secret_value():
    """The Secret is created by the operator (docs/deploy.md), never committed."""
    docs = [(p, d) for p in manifest_files() for d in load_docs(p)]
    kustomizations = sorted(K8S.rglob("kustomization.y*ml"))
    assert kustomizations
    docs += [(p, d) for p in kustomizations for d in load_docs(p)]
    for path, doc in docs:
        where = path.relative_to(K8S).as_posix()
        for node in walk(doc):
            if not isinstance(node, dict):
                continue
            assert node.get("kind") != "Secret", f"{where}: a Secret object"
            assert "stringData" not in node, f"{where}: secret data"
            assert node.get("name") != SECRET_ENV, f"{where}: env {SECRET_ENV} would carry the secret itself"
            for gen in node.get("secretGenerator", []) or []:
                assert not gen.get("literals"), f"{where}: secretGenerator with literal values"
        for c in (pod_spec(doc) or {}).get("containers", []):
            argv = " ".join(map(str, c.get("command", []) + c.get("args", [])))
            assert "--cluster-secret" not in argv or "--cluster-secret-file" in argv, where
    # Nor does any file under k8s/ carry something shaped like the
    # documented secret (base64 of 32 bytes) or the env var with a value.
    for path in sorted(p for p in K8S.rglob("*") if p.is_file()):
        text = path.read_text()
        assert not re.search(r"[A-Za-z0-9+/]{43}=", text), f"{path}: looks like a secret value"
        assert not re.search(rf"\b{SECRET_ENV}\b\s*[=:]\s*\S", text), f"{path}: {SECRET_ENV} with a value"


# --- the course's pods --------------------------------------------------------


COURSE = {
    # file: (pod name, role label, container name, id variable or None)
    "frontend-pod.yml": ("frontend-pod", "frontend", "frontend-container", None),
    "server-pod.yml": ("server-pod", "server", "server-container", ("SERVER_ID", "SERVER_ID_DUMMY")),
    "client-pod.yml": ("client-pod", "client", "client-container", ("CLIENT_ID", "CLIENT_ID_DUMMY")),
}


def test_course_folder_holds_only_what_run_cluster_loads():
    """run_cluster.py opens $KVS_HOME/yaml/pods/<role>-pod.yml and nothing else."""
    files = sorted(p.relative_to(K8S / "course").as_posix() for p in (K8S / "course").rglob("*") if p.is_file())
    assert files == sorted(f"yaml/pods/{name}" for name in COURSE)


@pytest.mark.parametrize("filename", sorted(COURSE))
def test_course_pod_keeps_the_course_format(filename):
    pod = course_pods()[filename]
    name, role, container_name, id_var = COURSE[filename]
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == name
    assert pod["metadata"]["labels"] == {"role": role}
    assert "namespace" not in pod["metadata"]  # the harness creates it in "default"
    spec = pod["spec"]
    assert spec["hostNetwork"] is True
    assert spec["restartPolicy"] == "Never"
    assert spec["nodeSelector"] == {"role": "general"}
    assert len(spec["containers"]) == 1
    c = spec["containers"][0]
    assert c["name"] == container_name
    assert c["image"].startswith(f"kvs-{role}:")
    assert not c.get("securityContext", {}).get("privileged")
    env = env_of(c)
    # Host networking: the ports stay on the node's loopback, as the course's.
    assert env_value(c, "KVS_BIND") == "127.0.0.1"
    assert "KVS_JOIN" not in env  # the harness admits servers itself
    # No cluster secret: the course's run_cluster.py calls addServer and
    # shutdownServer without one, so every such call would get Fault 9.
    assert not {SECRET_ENV, SECRET_FILE_ENV} & set(env)
    assert not spec.get("volumes") and not c.get("volumeMounts")
    if id_var is not None:
        var, dummy = id_var
        assert env_value(c, var) == dummy


@pytest.mark.parametrize("filename", ["server-pod.yml", "client-pod.yml"])
def test_course_substitution_as_run_cluster_does_it(filename):
    """What run_cluster.py's add_nodes does to the loaded pod, replayed."""
    pod = course_pods()[filename]
    name, role, _, (var, _) = COURSE[filename]
    env = pod["spec"]["containers"][0]["env"]
    replaced = False
    for pair in env:  # shared/util.py replace_yaml_val
        if pair["name"] == var:
            pair["value"] = "3"
            replaced = True
            break
    assert replaced
    pod["metadata"]["name"] = f"{name[:-len('-pod')]}-pod-3"
    pod["metadata"]["labels"]["role"] = f"{role}-3"
    assert env_of(pod["spec"]["containers"][0])[var]["value"] == "3"
    assert pod["metadata"]["labels"] == {"role": f"{role}-3"}
    kv = kubernetes_validate()
    kv.validate(pod, MIN_KUBERNETES, strict=True)
