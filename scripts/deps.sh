#!/usr/bin/env bash
# Installs, from Debian's archive, whatever a bulwark job needs and this
# machine lacks. Usage: scripts/deps.sh run|test|bench|fuzz
# It checks each package with dpkg first and calls apt-get (after one
# `apt-get update`) only for the missing ones, so a second run is instant.
set -euo pipefail

job=${1:-test}

common=(gcc make cmake pkg-config libuv1-dev node-llhttp)
# test: build-essential ... help2man are for B-01, which builds the Debian
# packages (dpkg-buildpackage requires build-essential; debian/control the rest);
# haproxy is for tests/e2e/test_haproxy.py; systemd (systemd-socket-activate,
# systemd-analyze) for test_systemd.py; prometheus (promtool) for test_metrics.py.
case "$job" in
  run)   want=("${common[@]}") ;;
  test)  want=("${common[@]}" clang libclang-rt-dev valgrind curl python3 python3-pytest procps nodejs
               systemd build-essential debhelper dpkg-dev fakeroot lintian help2man prometheus
               haproxy) ;;
  bench) want=("${common[@]}" clang curl python3 wrk nginx-light nodejs valgrind strace procps) ;;
  fuzz)  want=("${common[@]}" clang libclang-rt-dev) ;;
  *) echo "usage: $0 run|test|bench|fuzz" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  # A tool that came another way (nodejs from NodeSource, say) counts too.
  if [[ "$status" != *"ok installed"* ]]; then
    case "$pkg" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      python3) command -v /usr/bin/python3 >/dev/null 2>&1 && continue ;;
    esac
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi
echo "deps: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: need root to install packages: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
