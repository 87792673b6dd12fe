#!/usr/bin/env bash
# Installs what fairlead's tests, quickstart and benchmarks need from Debian,
# when missing. Safe to run again; needs root (or sudo) only to install.
# With commands as arguments (`install-deps.sh curl nc`, the quickstart's),
# only the packages of those.
set -euo pipefail
want=(curl:curl nc:netcat-openbsd openssl:openssl wrk:wrk nginx:nginx-light haproxy:haproxy taskset:util-linux ip:iproute2 python3:python3 keepalived:keepalived sysctl:procps containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins musl-gcc:musl-tools iptables:iptables nsenter:util-linux systemd-analyze:systemd chromium:chromium rsyslogd:rsyslog iperf3:iperf3)
only=" $* "
missing=()
for pair in "${want[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  [ $# -eq 0 ] || [[ $only == *" $cmd "* ]] || continue
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
if [ $# -eq 0 ]; then
  # scripts/bench.py runs nginx's stream {} proxy (TCP bulk).
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
  # scripts/kube-schemas.py reads the CRDs' YAML.
  python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install Rust (https://rustup.rs) first" >&2
  exit 1
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start services we do not want: our tests and benchmarks run their own.
for svc in nginx haproxy keepalived containerd; do
  $sudo systemctl disable --now "$svc" >/dev/null 2>&1 || $sudo service "$svc" stop >/dev/null 2>&1 || true
done
