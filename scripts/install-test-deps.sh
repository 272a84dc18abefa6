#!/usr/bin/env bash
# Installs what the test suite needs, idempotently: Debian's skopeo, docker-registry (CNCF
# Distribution 2.8), apache2-utils (htpasswd), wrk, tmux, haproxy; PyPI's kcl-lib (real KCL), oras
# and PyYAML; moto and Azurite for the object-store driver.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
[ -x /usr/bin/docker-registry ] || need_apt+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || need_apt+=(apache2-utils)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# GNU time: bench/src/bin/gc_bench.rs reads wall time and peak RSS from /usr/bin/time -f.
[ -x /usr/bin/time ] || need_apt+=(time)
# tmux: a real terminal for the Ctrl-C test of `ocireg push`.
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # docker-registry's package starts a system service on :5000; tests start their own.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
  pkill -f '^/usr/bin/docker-registry serve /etc/docker/registry/config.yml' 2>/dev/null || true
fi

# haproxy: the load balancer in front of several `ocireg serve` replicas in the replica tests
# (crates/test-support/src/haproxy.rs starts its own). The package starts a system service on
# install; it is stopped and disabled, by its unit or its pid file, never by process name.
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  echo "installing Debian package: haproxy"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends haproxy >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now haproxy >/dev/null 2>&1 || true
  else
    $SUDO service haproxy stop >/dev/null 2>&1 || true
    if [ -s /run/haproxy.pid ]; then $SUDO kill "$(cat /run/haproxy.pid)" 2>/dev/null || true; fi
  fi
fi

PY=${PYTHON:-python3}
need_pip=()
"$PY" -c 'import kcl_lib' >/dev/null 2>&1 || need_pip+=("kcl-lib==0.13.*")
"$PY" -c 'import oras' >/dev/null 2>&1 || need_pip+=("oras")
# PyYAML: tests/kcl_diff/run.py reads its YAML corpus and writes YAML instances.
"$PY" -c 'import yaml' >/dev/null 2>&1 || need_pip+=("PyYAML")
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing PyPI packages: ${need_pip[*]}"
  "$PY" -m pip install -q --disable-pip-version-check "${need_pip[@]}"
fi
# Object-store servers for the object-store driver's tests (crates/store/tests/object_driver.rs):
# moto (S3) in a virtualenv and Azurite (Azure Blob Storage; 3.36+ needs Node >= 21), both
# under $OCIREG_TEST_TOOLS (default ~/.cache/ocireg-test), where the test harness looks.
TOOLS=${OCIREG_TEST_TOOLS:-$HOME/.cache/ocireg-test}
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/moto/bin/moto_server" ]; then
  # Debian splits venv's pip bootstrap into python3-venv.
  "$PY" -c 'import ensurepip' >/dev/null 2>&1 || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
  echo "installing moto into $TOOLS/moto"
  "$PY" -m venv "$TOOLS/moto"
  "$TOOLS/moto/bin/pip" install -q --disable-pip-version-check 'moto[server]'
fi
if [ ! -x "$TOOLS/azurite/node_modules/.bin/azurite-blob" ]; then
  command -v npm >/dev/null 2>&1 || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null; }
  echo "installing Azurite into $TOOLS/azurite"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/azurite" azurite@3.35.0
fi
echo "test dependencies present"
