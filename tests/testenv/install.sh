#!/usr/bin/env bash
# Installs and builds what the test cluster needs on a Debian bookworm machine, idempotently,
# caching every build outside the repository keyed by its inputs:
#   - Debian packages: containerd, runc, the CNI plugins, iptables, docker-registry, skopeo,
#     umoci, debootstrap, busybox-static, apache2-utils (htpasswd), rsync, openssl, curl;
#     chromium, chromium-driver and a font, for the test that opens `report`'s page in a browser
#   - go/kube: kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubelet and
#     a GPU device plugin in one binary, from k8s.io/kubernetes's Go module
#   - go/services: etcd, CoreDNS and fake-gcs-server in one binary, from their Go modules
#   - images/build.sh: the images, built from Debian packages into registry storage
#   - the datastore emulators: moto (PyPI) and Azurite (npm)
#   - Mermaid (npm), for the test that renders `show --graph` in the browser
# The Go builds, the images and the emulators run in parallel on a cold machine.
# Prints KEY=PATH lines (kube, services, images, emulators, mermaid) and `version PART VERSION`
# lines.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache="${KUBESTEP_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubestep-testenv}"
mkdir -p "$cache"
say() { echo "testenv install: $*" >&2; }
# One install at a time: scripts/test starts one in the background while cargo builds, and the
# first test to start a cluster runs this again.
exec 9>"$cache/install.lock"
flock 9

kubernetes=v1.34.4
moto=5.2.5
azurite=3.37.0
mermaid=11.17.2

need_pkgs=()
for p in containerd runc containernetworking-plugins iptables docker-registry skopeo umoci \
  debootstrap busybox-static apache2-utils rsync openssl curl gcc libc6-dev python3-venv \
  chromium chromium-driver fonts-dejavu-core; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi
# containerd's package starts a system containerd on /run/containerd; the cluster runs its own.
if command -v systemctl >/dev/null && systemctl is-active -q containerd 2>/dev/null; then
  systemctl disable --now containerd >&2 || true
fi

go_version=$(go env GOVERSION 2>/dev/null || true)
case "$go_version" in
  go1.2[4-9]* | go1.[3-9]*) ;;
  *) say "Go 1.24 or newer is needed to build Kubernetes $kubernetes (found '${go_version:-none}')"; exit 1 ;;
esac

# key FILES...: a short hash of the inputs of a build, and of the Go toolchain.
key() { { echo "$go_version"; cat "$@"; } | sha256sum | cut -c1-16; }

# The Debian archive this machine's apt uses, for debootstrap: no mirror is named here.
debian_mirror() {
  python3 - <<'PY'
import glob, re
def entries():
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            text = open(path).read()
        except OSError:
            continue
        for line in text.splitlines():
            parts = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
            if len(parts) >= 3 and parts[0] == "deb":
                yield parts[1], [parts[2]]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", open(path).read()):
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                k, v = line.split(":", 1)
                fields[k.strip().lower()] = v.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"])[0] != "no":
                for uri in fields.get("uris", []):
                    yield uri, fields.get("suites", [])
for uri, suites in entries():
    if "bookworm" in suites:
        print(uri.rstrip("/"))
        break
else:
    raise SystemExit("no Debian bookworm archive in this machine's apt sources")
PY
}

# The Go build and module caches of a cold build take about 10 GB; the binaries are cached by
# key, so they live in a scratch directory that goes once the builds have succeeded (a full
# disk makes the kubelets evict the tests' pods).
gowork="$cache/go-work"
export GOCACHE="$gowork/build" GOMODCACHE="$gowork/mod"
# go_build NAME LDFLAGS: builds go/NAME into $cache/go/NAME-KEY/NAME unless cached.
go_build() {
  local name=$1 ldflags=$2 src="$here/go/$1"
  local out="$cache/go/$name-$(key "$src"/go.mod "$src"/go.sum "$src"/*.go)"
  if [ ! -x "$out/$name" ]; then
    say "building go/$name (the first time: about 20 minutes for kube on 2 cores)"
    mkdir -p "$out.tmp"
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/$name" .) >&2
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  echo "$out/$name"
}

images="$cache/images-$(key "$here/images/build.sh" "$here/images/pause.c")"
emu="$cache/emulators"
logs="$cache/logs"
mkdir -p "$logs"
pids=()
if [ ! -d "$images/public" ]; then
  say "building the images (log: $logs/images.log)"
  (bash "$here/images/build.sh" "$images" "$(debian_mirror)" >"$logs/images.log" 2>&1) &
  pids+=($!)
fi
if [ ! -x "$emu/py/bin/moto_server" ] || [ ! -x "$emu/npm/node_modules/.bin/azurite-blob" ]; then
  say "installing moto $moto and azurite $azurite into $emu (log: $logs/emulators.log)"
  (
    python3 -m venv "$emu/py"
    "$emu/py/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto" 'azure-storage-blob==12.*'
    mkdir -p "$emu/npm"
    npm install --silent --no-audit --no-fund --prefix "$emu/npm" "azurite@$azurite"
  ) >"$logs/emulators.log" 2>&1 &
  pids+=($!)
fi
web="$cache/web-mermaid-$mermaid"
if [ ! -f "$web/node_modules/mermaid/dist/mermaid.min.js" ]; then
  say "installing mermaid $mermaid into $web (log: $logs/web.log)"
  (npm install --silent --no-audit --no-fund --prefix "$web" "mermaid@$mermaid" >"$logs/web.log" 2>&1) &
  pids+=($!)
fi
version_flags="-X k8s.io/component-base/version.gitVersion=$kubernetes -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
kube=$(go_build kube "$version_flags")
services=$(go_build services "")
if [ -d "$gowork" ]; then
  chmod -R u+w "$gowork" && rm -rf "$gowork"
fi
for pid in "${pids[@]}"; do
  if ! wait "$pid"; then
    say "a background install failed; see $logs/images.log, $logs/emulators.log and $logs/web.log"
    tail -n 30 "$logs"/*.log >&2
    exit 1
  fi
done

echo "kube=$kube"
echo "services=$services"
echo "images=$images"
echo "emulators=$emu"
echo "mermaid=$web/node_modules/mermaid/dist/mermaid.min.js"
mod_version() { sed -n "s|^[[:space:]]*$1 \(v[^ ]*\).*|\1|p" "$here/go/$2/go.mod" | head -n1; }
echo "version kubernetes $kubernetes"
echo "version etcd $(mod_version go.etcd.io/etcd/server/v3 services)"
echo "version coredns $(mod_version github.com/coredns/coredns services)"
echo "version fake-gcs-server $(mod_version github.com/fsouza/fake-gcs-server services)"
for p in containerd runc containernetworking-plugins docker-registry; do
  echo "version $p $(dpkg-query -W -f='${Version}' "$p")"
done
echo "version go $go_version"
echo "version moto $moto"
echo "version azurite $azurite"
echo "version mermaid $mermaid"
