#!/usr/bin/env bash
# Installs what the test cluster needs on a Debian bookworm machine, idempotently:
#   - Debian packages: etcd-server, bubblewrap, openssl, curl, golang-go, rsync, dpkg-dev
#   - kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2, built once from Debian
#     bookworm's `kubernetes` source package and cached outside the repository, keyed by version.
# Prints the directory holding the three binaries on its last line.
set -euo pipefail

version=1.20.2
cache="${KUBESTEP_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kubestep-testenv}"
bin="$cache/kubernetes-v$version/bin"
say() { echo "testenv install: $*" >&2; }

need_pkgs=()
for p in etcd-server bubblewrap openssl curl golang-go rsync dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$p")
done
src_list=/etc/apt/sources.list.d/kubestep-bookworm-src.sources
if [ ! -x "$bin/kube-apiserver" ] && [ ! -f "$src_list" ]; then
  say "adding a deb-src entry for bookworm (to build the control plane from Debian's source)"
  cat > "$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  updated=0
fi
if [ ${#need_pkgs[@]} -gt 0 ] || [ "${updated:-1}" = 0 ]; then
  say "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing ${need_pkgs[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

# Datastore emulators: moto (S3) and gcp-storage-emulator (GCS) from PyPI in a virtualenv, the
# Azure SDK to create Azurite's container, and Azurite (Azure Blob) from npm.
emu="$cache/emulators"
if [ ! -x "$emu/py/bin/moto_server" ] || [ ! -x "$emu/py/bin/gcp-storage-emulator" ] || [ ! -x "$emu/py/bin/python" ]; then
  say "installing moto[server], gcp-storage-emulator and azure-storage-blob into $emu/py"
  python3 -m venv "$emu/py"
  "$emu/py/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 'gcp-storage-emulator==2026.7.19' 'azure-storage-blob==12.*' >&2
fi
if [ ! -x "$emu/npm/node_modules/.bin/azurite-blob" ]; then
  say "installing azurite into $emu/npm"
  mkdir -p "$emu/npm"
  npm install --silent --no-audit --no-fund --prefix "$emu/npm" azurite@3.37.0 >&2
fi

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kube-controller-manager" ] && [ -x "$bin/kube-scheduler" ]; then
  say "control plane v$version cached in $bin"
  echo "$bin"
  exit 0
fi

work="$cache/build-v$version"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
say "downloading Debian's kubernetes source package"
apt-get source --download-only kubernetes >&2
orig=$(ls kubernetes_*.orig.tar.* | head -n1)
say "unpacking $orig"
mkdir -p src
tar -xf "$orig" -C src --strip-components=1
# The vendored modern-go/reflect2 v1.0.1 calls reflect.mapiterinit with its pre-Go-1.18
# signature; built with Debian's Go 1.19 the API server then crashes ("unexpected fault
# address" in aeshashbody) the first time it encodes a map. Apply reflect2 v1.0.2's fix.
say "patching vendored modern-go/reflect2 for Go >= 1.18"
r2=src/vendor/github.com/modern-go/reflect2
python3 - "$r2" <<'PY'
import sys, pathlib
d = pathlib.Path(sys.argv[1])
link = d / "unsafe_link.go"
s = link.read_text()
s = s.replace("func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) *hiter",
              "func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)")
old_hiter = s[s.index("type hiter struct {"):]
old_hiter = old_hiter[:old_hiter.index("}\n") + 2]
s = s.replace(old_hiter, """type hiter struct {
	key         unsafe.Pointer
	value       unsafe.Pointer
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    *[]unsafe.Pointer
	oldoverflow *[]unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}
""")
link.write_text(s)
m = d / "unsafe_map.go"
s = m.read_text()
s = s.replace("""	return &UnsafeMapIterator{
		hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),""", """	var it hiter
	mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), &it)
	return &UnsafeMapIterator{
		hiter:      &it,""")
m.write_text(s)
assert "&it" in s and "it *hiter)" in link.read_text(), "reflect2 patch did not apply"
PY
mkdir -p gopath/src/k8s.io
ln -sfn "$work/src" gopath/src/k8s.io/kubernetes
say "building kube-apiserver, kube-controller-manager, kube-scheduler (about 9 minutes on 2 cores)"
(
  cd gopath/src/k8s.io/kubernetes
  export GOPATH="$work/gopath" GO111MODULE=off CGO_ENABLED=0 GOFLAGS=-mod=vendor GOCACHE="$work/gocache"
  export KUBE_GIT_VERSION="v$version" KUBE_GIT_TREE_STATE=clean
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >&2
)
out=gopath/src/k8s.io/kubernetes/_output/local/bin/linux/amd64
[ -d "$out" ] || out=$(dirname "$(find "$work/src/_output" -name kube-apiserver -type f | head -n1)")
mkdir -p "$bin"
for b in kube-apiserver kube-controller-manager kube-scheduler; do
  install -m 0755 "$out/$b" "$bin/$b"
done
"$bin/kube-apiserver" --version >&2
rm -rf "$work"
say "control plane v$version installed in $bin"
echo "$bin"
