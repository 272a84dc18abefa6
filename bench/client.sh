#!/usr/bin/env bash
# Client benchmark: push and pull of a 1 GiB artifact (one random file in a directory) with
# `ocireg push` / `ocireg pull` versus `skopeo copy` of the same content (dir: -> docker:// and
# docker:// -> dir:), all against one `ocireg serve` (release build) on a free 127.0.0.1 port.
# Reports wall seconds, MB/s (10^6 bytes) and peak RSS of each client (`/usr/bin/time -v`).
#
#   bench/client.sh                       # builds target/release/ocireg, 1 GiB
#   BENCH_NO_BUILD=1 bench/client.sh      # use the existing release binary
#   BENCH_SIZE_MIB=64 bench/client.sh     # smaller payload (smoke run)
#
# Fairness: ocireg pushes with compression disabled (push_policy.compression_enabled = false) so
# both sides move an uncompressed tar layer; skopeo runs with --preserve-digests so it does not
# gzip the layer on the way. `ocireg push` includes packing the directory into the tar layer
# (read + hash + write of the payload) — skopeo's layer is prepared before timing; `ocireg pull`
# includes storing the layer in the pull cache and unpacking it — skopeo only writes the blob.
# Everything lives in one temp dir that is removed at the end (also on error or Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${BENCH_SIZE_MIB:-1024}
BIN=${OCIREG_BIN:-$PWD/target/release/ocireg}
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release -p ocireg
fi
for tool in skopeo /usr/bin/time python3 tar sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "missing $tool: run scripts/install-test-deps.sh" >&2
    exit 1
  }
done
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }

W=$(mktemp -d "${TMPDIR:-/tmp}/ocireg-client-bench.XXXXXX")
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "preparing ${SIZE_MIB} MiB of random data in $W" >&2
mkdir -p "$W/src" "$W/skopeo-src" "$W/skopeo-home" "$W/ocireg-home"
head -c "${SIZE_MIB}M" /dev/urandom >"$W/src/payload.bin"
BYTES=$(stat -c %s "$W/src/payload.bin")

# The same content for skopeo: a `dir:` image whose one uncompressed tar layer holds payload.bin.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$W/src" -cf "$W/layer.tar" payload.bin
python3 - "$W" <<'PY'
import hashlib, json, os, sys
w = sys.argv[1]
def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
layer = sha(f"{w}/layer.tar")
size = os.path.getsize(f"{w}/layer.tar")
os.rename(f"{w}/layer.tar", f"{w}/skopeo-src/{layer}")
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}"]}}).encode()
cdig = hashlib.sha256(config).hexdigest()
open(f"{w}/skopeo-src/{cdig}", "wb").write(config)
manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{cdig}", "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{layer}", "size": size}]}
open(f"{w}/skopeo-src/manifest.json", "w").write(json.dumps(manifest))
open(f"{w}/skopeo-src/version", "w").write("Directory Transport Version: 1.1\n")
open(f"{w}/layer.digest", "w").write(layer)
PY

# The registry.
HOME="$W/server-home" OCIREG_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --root "$W/root" \
  >"$W/server.out" 2>"$W/server.log" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 300); do
  PORT=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$W/server.out")
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "ocireg serve did not start: $(cat "$W/server.log")" >&2; exit 1; }
REG="127.0.0.1:$PORT"

cat >"$W/ocireg.yaml" <<EOF
registry:
  deployment: remote
  type: distribution
  endpoint: 127.0.0.1
  port: $PORT
  namespaces: {}
  remote: {timeout: 60, retries: 3, retry_delay: 1}
push_policy:
  compression_enabled: false
pull_policy:
  policy: always
EOF

ROWS=()
# measure LABEL TOOL CMD... : runs CMD under /usr/bin/time -v, records seconds, MB/s, peak RSS.
measure() {
  local label=$1 tool=$2
  shift 2
  sync
  echo "running: $label ($tool)" >&2
  if ! /usr/bin/time -v -o "$W/time.txt" "$@" >"$W/cmd.out" 2>"$W/cmd.err"; then
    echo "$label ($tool) failed:" >&2
    cat "$W/cmd.err" >&2
    exit 1
  fi
  local wall rss secs
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$W/time.txt")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$W/time.txt")
  secs=$(python3 -c "
p='$wall'.split(':'); s=0.0
for x in p: s = s*60 + float(x)
print(f'{s:.2f}')")
  local mbps rss_mib
  mbps=$(python3 -c "print(f'{$BYTES/1e6/max($secs,0.01):.0f}')")
  rss_mib=$(python3 -c "print(f'{$rss/1024:.1f}')")
  ROWS+=("| $label | $tool | $secs | $mbps | $rss_mib |")
}

LAYER=$(cat "$W/layer.digest")
export HOME="$W/skopeo-home"
measure push skopeo skopeo --insecure-policy copy --quiet --preserve-digests --dest-tls-verify=false \
  "dir:$W/skopeo-src" "docker://$REG/bench/skopeo:1"
measure pull skopeo skopeo --insecure-policy copy --quiet --src-tls-verify=false \
  "docker://$REG/bench/skopeo:1" "dir:$W/skopeo-out"
cmp "$W/skopeo-out/$LAYER" "$W/skopeo-src/$LAYER" || { echo "skopeo pull: layer differs" >&2; exit 1; }
rm -rf "$W/skopeo-out"

export HOME="$W/ocireg-home"
measure push ocireg "$BIN" --config "$W/ocireg.yaml" push extension "$W/src" payload:1 --quiet
measure pull ocireg "$BIN" --config "$W/ocireg.yaml" pull provisioning-extensions/payload:1 \
  -o "$W/ocireg-out" --quiet
cmp "$W/src/payload.bin" "$W/ocireg-out/payload.bin" || { echo "ocireg pull: payload differs" >&2; exit 1; }

echo "client benchmark: ${SIZE_MIB} MiB payload ($BYTES bytes), one ocireg serve on $REG; binary $BIN"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r)"
echo
echo "| operation | client | seconds | MB/s | peak RSS (MiB) |"
echo "| --- | --- | --- | --- | --- |"
for r in "${ROWS[@]}"; do
  echo "$r"
done | sort -s -k2,2
