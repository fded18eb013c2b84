#!/usr/bin/env bash
# Builds the test cluster's images from Debian packages (no public registry is reachable) and
# stores them in two registry storage directories that `docker-registry` serves at run time:
#   OUT/public   docker.io/library/debian:bookworm-slim (and :bookworm), docker.io/library/busybox,
#                docker.io/curlimages/curl:8.11.1 (curl + CA certificates, user curl_user),
#                registry.k8s.io/pause:3.10, ghcr.io/acme/train:1.4,
#                ghcr.io/kubestep/metaflow:2.19.39 (Python 3 with Metaflow's pod-side packages, for
#                the benchmark against Metaflow)
#   OUT/private  registry.example.com/acme/sorter:1.4 (served behind htpasswd)
# Usage: build.sh OUT MIRROR   (MIRROR: a Debian archive URL from the machine's apt sources)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1 mirror=$2
work="$out.work"
say() { echo "testenv images: $*" >&2; }
rm -rf "$work" "$out"
mkdir -p "$work/debs" "$out/public" "$out/private"
path_env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
layout="$work/layout"
umoci init --layout "$layout"

# image TAG ROOTFS [umoci config flags...]: one layer holding ROOTFS, then the config.
image() {
  local tag=$1 root=$2; shift 2
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$work/bundle"
  rsync -a "$root/" "$work/bundle/rootfs/"
  umoci repack --image "$layout:$tag" "$work/bundle"
  rm -rf "$work/bundle"
  umoci config --image "$layout:$tag" --config.env "$path_env" "$@"
}

say "debootstrap --variant=minbase bookworm (about two minutes)"
debootstrap --variant=minbase --cache-dir="$work/debs" bookworm "$work/slim" "$mirror" >&2
say "debootstrap with curl and ca-certificates"
debootstrap --variant=minbase --cache-dir="$work/debs" --include=curl,ca-certificates bookworm "$work/curl" "$mirror" >&2
chroot "$work/curl" groupadd --system --gid 101 curl_group
chroot "$work/curl" useradd --system --uid 100 --gid curl_group --home-dir /home/curl_user --create-home --shell /bin/sh curl_user
for root in "$work/slim" "$work/curl"; do
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
done
image slim "$work/slim" --config.cmd bash
image curl "$work/curl" --config.cmd curl --config.user curl_user --config.workingdir /home/curl_user

# The examples' own images: Debian with a file naming the image, so a step can tell which it got.
for name in ghcr.io/acme/train:1.4 registry.example.com/acme/sorter:1.4; do
  tag=${name//[\/:.]/-}
  rm -rf "$work/marker" && mkdir -p "$work/marker/etc"
  echo "$name" > "$work/marker/etc/kubestep-image"
  cp -a "$work/slim" "$work/$tag" && rsync -a "$work/marker/" "$work/$tag/"
  image "$tag" "$work/$tag" --config.cmd bash
  rm -rf "$work/$tag"
done

# The peer's image: Python 3 (as `python`, which Metaflow's pod command calls) with the packages
# Metaflow's S3 datastore needs in a pod, and numpy for the array flow (Metaflow itself comes
# in each run's code package).
# pip runs here, under the machine's own pip settings: the chroot has no network.
say "debootstrap with python3 for Metaflow's image"
debootstrap --variant=minbase --cache-dir="$work/debs" --include=python3,python-is-python3,ca-certificates bookworm "$work/metaflow" "$mirror" >&2
python3 -m venv "$work/pip"
"$work/pip/bin/pip" install --quiet --disable-pip-version-check --no-compile \
  --target "$work/metaflow/usr/local/lib/python3.11/dist-packages" \
  metaflow==2.19.39 boto3==1.44.8 requests==2.34.2 numpy==2.4.6 'python-dateutil<3' >&2
rm -rf "$work/metaflow"/var/cache/apt/archives/*.deb "$work/metaflow"/var/lib/apt/lists/* "$work/metaflow"/var/log/*
# The packages are in the image, so the pod command's `pip install` is skipped.
image metaflow "$work/metaflow" --config.cmd bash --config.env METAFLOW_SKIP_INSTALL_DEPENDENCIES=1

say "busybox from Debian's busybox-static"
mkdir -p "$work/busybox/bin" "$work/busybox/etc" "$work/busybox/tmp"
cp /bin/busybox "$work/busybox/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$work/busybox/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$work/busybox/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/busybox/etc/group"
chmod 1777 "$work/busybox/tmp"
image busybox "$work/busybox" --config.cmd sh

say "pause from pause.c"
mkdir -p "$work/pause"
gcc -static -O2 -o "$work/pause/pause" "$here/pause.c"
image pause "$work/pause" --config.entrypoint /pause --config.user 65535:65535

# Push into the storage directories through a registry of our own on loopback.
push() {
  local storage=$1; shift
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: warn}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: "127.0.0.1:%s"}\n' "$storage" "$port" > "$work/registry.yml"
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  while [ $# -gt 0 ]; do
    skopeo copy --quiet --dest-tls-verify=false "oci:$layout:$1" "docker://127.0.0.1:$port/$2" >&2
    shift 2
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
say "pushing into the registry storage"
push "$out/public" slim library/debian:bookworm-slim slim library/debian:bookworm busybox library/busybox:latest \
  curl curlimages/curl:8.11.1 pause pause:3.10 ghcr-io-acme-train-1-4 acme/train:1.4 \
  metaflow kubestep/metaflow:2.19.39
push "$out/private" registry-example-com-acme-sorter-1-4 acme/sorter:1.4
rm -rf "$work"
say "images stored in $out"
