#!/usr/bin/env bash
# Install the Debian packages the tests need, only when they are missing.
# Idempotent and quiet when everything is already there. Needs root to install;
# without root it lists what is missing and exits 1.
set -euo pipefail

PACKAGES=(
  openvswitch-switch   # ovsdb-server, ovs-vswitchd, ovs-vsctl, ovs-ofctl, ovs-appctl
  mininet              # mnexec (PyPI mininet needs it)
  libvirt-clients      # virt-xml-validate
  libvirt-dev          # libvirt-python (the vm runner) builds against it; brings libvirt0 (test:/// driver)
  pkg-config           # libvirt-python's build finds libvirt with it
  gcc                  # libvirt-python is a C extension built from source (PyPI has no wheel)
  libxml2-utils        # xmllint (used by virt-xml-validate)
  graphviz             # dot
  iproute2             # ip netns, tc
  procps               # ps, pkill-free process inspection
  iputils-ping         # ping
  netcat-openbsd       # nc
  ethtool              # the lab turns off checksum and segmentation offload on veths
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
  echo "system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "system-deps: install them as root:" >&2
  echo "    apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/fsc-system-deps.XXXXXX.log)
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "system-deps: apt-get failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "system-deps: done" >&2
