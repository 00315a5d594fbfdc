#!/usr/bin/env bash
# Builds the repository's Dockerfile with podman and checks the image (deploy/docker/ci_check.py):
# its metadata (non-root USER, HEALTHCHECK, ENTRYPOINT/CMD, EXPOSE, VOLUME), then the gateway
# started from it as its own user, the image's HEALTHCHECK command passing against it, a chat
# completion from the mock model, and a graceful stop on SIGTERM.
#
# The base is python:3.12-slim when it can be pulled. Where no image registry is reachable (the
# project's CI machines reach only the package registries), the base is a minimal Debian made
# here from Debian's packages with mmdebstrap, with Debian's Python (3.11) in place of the official
# image's 3.12: everything in the Dockerfile is built and run, only the base differs.
#
# Needs root (CI runs as root) or an existing podman/buildah/mmdebstrap. Containers run with
# buildah's chroot isolation and the host's network, which works where the OCI runtime cannot
# set rlimits or cgroups (as on these machines).
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${MODELWAY_CI_IMAGE:-localhost/modelway:ci}
base_official=docker.io/library/python:3.12-slim
base_local=localhost/modelway-ci-base:bookworm

missing=()
for tool in podman buildah mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image: installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q "${missing[@]}" >/dev/null
fi

if podman image exists "$base_official" || timeout 120 podman pull -q "$base_official" >/dev/null 2>&1; then
  base=$base_official
  echo "image: base $base"
else
  base=$base_local
  echo "image: $base_official cannot be pulled (no image registry reachable);" \
       "building on $base, a minimal Debian made with mmdebstrap"
  if ! podman image exists "$base"; then
    rootfs=$(mktemp -d)/rootfs.tar
    # The host's CA bundle goes in, so pip inside the build trusts what the host trusts.
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
      --customize-hook='upload /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt' \
      bookworm "$rootfs"
    podman import --quiet --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
      "$rootfs" "$base" >/dev/null
    rm -rf "$(dirname "$rootfs")"
  fi
fi

# --format docker: the OCI image format has no HEALTHCHECK (podman would drop it).
echo "image: building $image"
log=$(mktemp)
if ! podman build --format docker --isolation chroot --build-arg "PYTHON_IMAGE=$base" \
    -t "$image" . >"$log" 2>&1; then
  tail -n 40 "$log"
  rm -f "$log"
  echo "image: the build failed"
  exit 1
fi
rm -f "$log"
python3 deploy/docker/ci_check.py "$image"
