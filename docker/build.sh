#!/usr/bin/env bash
# Builds the static kvs binaries and one FROM-scratch image per binary:
# kvs-frontend:VERSION, kvs-server:VERSION, kvs-client:VERSION, where
# VERSION is [workspace.package] version in Cargo.toml.
#
# The binaries are linked statically against glibc (crt-static) with an
# explicit --target, so build scripts and proc-macros stay dynamic. Each
# image is built from a tiny staging context (the binary, its Dockerfile
# and an empty data/ directory), never from the whole repository. When
# neither the binary nor the Dockerfile changed, docker's layer cache makes
# the image build a no-op, so running this before every cluster is cheap.
#
# Environment:
#   KVS_IMAGE_VERSION  tag to use instead of the workspace version
#   KVS_IMAGE_SOURCE   org.opencontainers.image.source label (default: git remote, if any)
#   KVS_SKIP_CARGO=1   do not run cargo; package the binaries already built
#   KVS_KEEP_DEBUG=1   keep the debug line tables (by default the staged copy is
#                      stripped of debug info, keeping symbols: ~33 MB -> ~7 MB)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
target=x86_64-unknown-linux-gnu
bin_dir="$repo/target/$target/release"
images=(kvs-frontend kvs-server kvs-client)

workspace_version() {
    # The version line of the [workspace.package] table of Cargo.toml.
    awk '
        /^\[/ { in_pkg = ($0 == "[workspace.package]") ; next }
        in_pkg && $1 == "version" { gsub(/[" ]/, "", $3); print $3; exit }
    ' "$repo/Cargo.toml"
}

version="${KVS_IMAGE_VERSION:-$(workspace_version)}"
if [[ -z "$version" ]]; then
    echo "build.sh: no [workspace.package] version in $repo/Cargo.toml" >&2
    exit 1
fi
source_url="${KVS_IMAGE_SOURCE:-$(git -C "$repo" config --get remote.origin.url 2>/dev/null || true)}"
# The source label is set only when something names the source: no made-up URL.
source_label=()
[[ -n "$source_url" ]] && source_label=(--label "org.opencontainers.image.source=$source_url")
revision="$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"

command -v docker >/dev/null || { echo "build.sh: docker CLI not found" >&2; exit 1; }

if [[ "${KVS_SKIP_CARGO:-}" != 1 ]]; then
    echo "build.sh: cargo build (static, --target $target)" >&2
    (cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --release --target "$target" \
        -p kvs-frontend -p kvs-server -p kvs-client --bins)
fi

stage_root="$(mktemp -d "${TMPDIR:-/tmp}/kvs-docker-stage.XXXXXX")"
trap 'rm -rf "$stage_root"' EXIT

for image in "${images[@]}"; do
    role="${image#kvs-}"
    binary="$bin_dir/$image"
    if [[ ! -x "$binary" ]]; then
        echo "build.sh: $binary is missing (did the cargo build run?)" >&2
        exit 1
    fi
    if ! file -b "$binary" 2>/dev/null | grep -q 'statically linked\|static-pie'; then
        if command -v file >/dev/null; then
            echo "build.sh: $binary is not statically linked: $(file -b "$binary")" >&2
            exit 1
        fi
    fi
    ctx="$stage_root/$role"
    mkdir -p "$ctx/data"
    cp "$here/Dockerfile.$role" "$ctx/Dockerfile"
    cp "$binary" "$ctx/$image"
    if [[ "${KVS_KEEP_DEBUG:-}" != 1 ]] && command -v strip >/dev/null; then
        strip --strip-debug "$ctx/$image"
    fi
    chmod 0755 "$ctx/$image"
    chmod 0755 "$ctx/data"
    old_id="$(docker image inspect --format '{{.Id}}' "$image:$version" 2>/dev/null || true)"
    echo "build.sh: docker build $image:$version" >&2
    # Quiet unless it fails (the legacy builder prints a deprecation notice).
    if ! docker build --quiet \
            --build-arg "VERSION=$version" \
            "${source_label[@]}" \
            --label "org.opencontainers.image.revision=$revision" \
            --tag "$image:$version" "$ctx" >"$stage_root/$role.log" 2>&1; then
        cat "$stage_root/$role.log" >&2
        echo "build.sh: docker build of $image:$version failed" >&2
        exit 1
    fi
    new_id="$(docker image inspect --format '{{.Id}}' "$image:$version")"
    if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
        # The previous build of this tag is now untagged: drop it (unless in use).
        docker rmi "$old_id" >/dev/null 2>&1 || true
    fi
done

echo "Images:"
for image in "${images[@]}"; do
    size="$(docker image inspect --format '{{.Size}}' "$image:$version")"
    awk -v name="$image:$version" -v size="$size" \
        'BEGIN { printf "  %-22s %6.1f MB (%d bytes)\n", name, size / 1e6, size }'
done
