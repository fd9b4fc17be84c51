"""pytest fixtures: kvs clusters of the real binaries on private addresses.

Every cluster gets its own 127.0.0.N address (the course's default ports
then never clash), and every process a fixture starts is stopped by its
Popen handle in teardown, whatever the test did. A missing binary fails the
test with a message telling to run ``cargo build --release``.
"""

import pytest

import kvstest


@pytest.fixture
def host():
    """A fresh 127.0.0.N address."""
    return kvstest.next_host()


@pytest.fixture
def make_cluster(tmp_path, binaries_built):
    """Factory: make_cluster(servers=2, clients=1) -> a started LocalCluster."""
    clusters = []

    def make(servers=2, clients=1, frontend=True):
        host = kvstest.next_host()
        log_dir = tmp_path / host
        log_dir.mkdir()
        cluster = kvstest.LocalCluster(host, log_dir)
        clusters.append(cluster)
        try:
            if frontend:
                cluster.start_frontend()
            for server_id in range(servers):
                cluster.start_server(server_id, add=frontend)
            for client_id in range(clients):
                cluster.start_client(client_id)
        except kvstest.MissingBinary as exc:
            pytest.fail(str(exc), pytrace=False)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


@pytest.fixture
def cluster(make_cluster):
    """A frontend, servers 0 and 1 (added) and client 0."""
    return make_cluster(servers=2, clients=1)


@pytest.fixture(scope="session")
def binaries_built():
    """Fails, clearly, if a binary is not built (the unit tests need none)."""
    try:
        for name in kvstest.BINARIES:
            kvstest.binary(name)
    except kvstest.MissingBinary as exc:
        pytest.fail(str(exc), pytrace=False)
