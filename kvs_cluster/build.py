"""Finding (and building) the Rust binaries for the local backend.

Binaries are looked up in ``$KVS_BIN_DIR`` if set, else in
``<repo>/target/release``. Before a run the local backend calls
``cargo build --release --bin kvs-frontend --bin kvs-server --bin kvs-client``
in the repository -- only the binaries a cluster starts, not the benchmark
tools -- (cargo itself decides whether anything is stale) unless ``KVS_NO_BUILD=1`` is set or
``KVS_BIN_DIR`` points at prebuilt binaries.
"""

import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARIES = ("kvs-frontend", "kvs-server", "kvs-client")


class BuildError(RuntimeError):
    """cargo is missing, the build failed, or a binary is not there."""


def bin_dir():
    """Where the binaries are expected."""
    return os.environ.get("KVS_BIN_DIR") or os.path.join(REPO_ROOT, "target", "release")


def binary(name):
    """Full path of binary ``name`` (it may not exist)."""
    return os.path.join(bin_dir(), name)


def have_binary(name):
    """True if binary ``name`` exists and is executable."""
    path = binary(name)
    return os.path.isfile(path) and os.access(path, os.X_OK)


def build_wanted():
    """False when KVS_NO_BUILD=1 or KVS_BIN_DIR names prebuilt binaries."""
    return os.environ.get("KVS_NO_BUILD") != "1" and not os.environ.get("KVS_BIN_DIR")


def cargo_build(repo_root=REPO_ROOT, names=BINARIES):
    """Builds the binaries ``names`` in release mode; BuildError if it cannot or fails."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise BuildError("cargo not found in PATH: install Rust (https://rustup.rs), "
                         "or set KVS_NO_BUILD=1 and put prebuilt binaries in KVS_BIN_DIR")
    argv = ["build", "--release"]
    for name in names:
        argv += ["--bin", name]
    command = "cargo " + " ".join(argv)
    print("Building: %s (in %s)" % (command, repo_root), flush=True)
    result = subprocess.run([cargo] + argv, cwd=repo_root,
                            stdin=subprocess.DEVNULL, stdout=sys.stderr, check=False)
    if result.returncode != 0:
        raise BuildError("%s failed (exit code %d); see cargo's output above"
                         % (command, result.returncode))


def require_binaries(names=BINARIES):
    """BuildError naming every missing binary."""
    missing = [binary(name) for name in names if not have_binary(name)]
    if missing:
        raise BuildError("missing binaries: %s; run `cargo build --release` "
                         "(or set KVS_BIN_DIR)" % ", ".join(missing))
