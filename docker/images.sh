#!/bin/bash
# `make images`: build the container images on a machine that reaches no container registry, then run each one's
# smoke command. The bases come from Debian's packages alone: mmdebstrap makes a bookworm root (Python 3.11 in a
# venv; for the native stage Rust and Python), `podman import` turns it into a local image, and each Dockerfile
# takes it as its BASE (with a registry, `docker build` uses python:3.11-slim-bookworm and rust:1-slim-bookworm).
#   IMAGES="producer consumer kinesis-mock moto"  which to build (default: all four)
#   COINSTREAM_IMAGES_DIR                           where the root tarballs and containers.conf go
#   --prerequisites                                 install podman, mmdebstrap and runc where missing, then stop
set -euo pipefail
cd "$(dirname "$0")/.."
images="${IMAGES:-producer consumer kinesis-mock moto}"
work="${COINSTREAM_IMAGES_DIR:-.coinstream/images}"
base=localhost/coinstream-base:bookworm
rust_base=localhost/coinstream-rust-base:bookworm
ca=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$work"

missing=()
for tool in podman mmdebstrap runc; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman mmdebstrap runc uidmap
  else
    echo "images: ${missing[*]} missing: sudo apt-get install podman mmdebstrap runc uidmap" >&2
    exit 1
  fi
fi
[ "${1:-}" = --prerequisites ] && exit 0

# crun fails on setrlimit and on a hybrid cgroup layout here: runc, and limits no higher than the host's hard ones
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
[ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
cat >"$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$PWD/$work/containers.conf"

took() { echo "images: $1 in $(( SECONDS - $2 )) s"; }

if ! podman image exists "$base"; then
  start=$SECONDS
  # shellcheck disable=SC2016  # "$1" is the new root, expanded by mmdebstrap, not here
  mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    --customize-hook='chroot "$1" python3 -m venv /opt/venv' bookworm "$work/base.tar"
  podman import --quiet --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$work/base.tar" "$base" >/dev/null
  rm -f "$work/base.tar"
  took "$base (Debian bookworm, Python 3.11 in /opt/venv)" "$start"
fi
if [[ " $images " == *" consumer "* ]] && ! podman image exists "$rust_base"; then
  start=$SECONDS
  mmdebstrap --quiet --variant=minbase \
    --include=rustc-web,cargo-web,gcc,libc6-dev,python3,python3-venv,ca-certificates bookworm "$work/rust.tar"
  podman import --quiet --change 'ENV LANG=C.UTF-8' "$work/rust.tar" "$rust_base" >/dev/null
  rm -f "$work/rust.tar"
  took "$rust_base (Debian bookworm, Rust from rustc-web)" "$start"
fi

# the host's CA bundle in every build, as behind any TLS-inspecting proxy
for image in $images; do
  start=$SECONDS
  podman build --quiet -f "docker/Dockerfile.$image" -v "$ca:$ca:ro" \
    --build-arg "BASE=$base" --build-arg "RUST_BASE=$rust_base" -t "localhost/coinstream-$image:dev" . >/dev/null
  took "localhost/coinstream-$image:dev" "$start"
done

# smoke: each image's own command, as its own user
for image in $images; do
  case "$image" in
    producer)
      podman run --rm -v coinstream-smoke:/var/lib/coinstream "localhost/coinstream-$image:dev" --help >/dev/null
      podman run --rm -v coinstream-smoke:/var/lib/coinstream --entrypoint sh "localhost/coinstream-$image:dev" \
        -c 'test "$(id -u)" = 10001 && touch /var/lib/coinstream/.smoke'
      ;;
    consumer)
      podman run --rm --entrypoint python "localhost/coinstream-$image:dev" -c \
        'from consumer.daemon import check_java_and_jars; check_java_and_jars(); import coinstream_native'
      ;;
    kinesis-mock)
      podman run --rm --entrypoint node "localhost/coinstream-$image:dev" -e \
        'require("fs").accessSync("/opt/kinesis-mock/node_modules/kinesis-local/main.js")'
      ;;
    moto)
      podman run --rm --entrypoint python "localhost/coinstream-$image:dev" -c 'import runpy, sys; sys.argv = ["x", "--help"]; runpy.run_path("/srv/moto_server.py", run_name="__main__")'
      ;;
  esac
  echo "images: localhost/coinstream-$image:dev smoke ok"
done
podman volume rm --force coinstream-smoke >/dev/null 2>&1 || true
