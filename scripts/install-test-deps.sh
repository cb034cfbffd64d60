#!/usr/bin/env bash
# Installs what deploybot's tests talk to for real: ngircd (IRC), prometheus
# (metrics), openssh-server (hosts over ssh), rsync (the benchmark baseline),
# chromium (the dashboard test) and git. Debian package names; run as root
# on a fresh Debian machine, or it tells you what to install.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have git        || need+=(git)
have ngircd     || need+=(ngircd)
have prometheus || need+=(prometheus)
have sshd       || need+=(openssh-server)
have ssh-keygen || need+=(openssh-client)
have rsync      || need+=(rsync)
have chromium   || need+=(chromium)

if [ ${#need[@]} -eq 0 ]; then
  echo "test dependencies: all present"
  exit 0
fi
echo "test dependencies: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cannot install as $(id -un) here; as root on Debian run:" >&2
  echo "  apt-get update && apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
# The packages' own services are not wanted: tests start their own
# instances on 127.0.0.1 with temporary configurations.
for svc in ngircd prometheus ssh; do
  (command -v systemctl >/dev/null && systemctl stop "$svc" 2>/dev/null) || true
  (command -v service >/dev/null && service "$svc" stop >/dev/null 2>&1) || true
done
echo "test dependencies: installed ${need[*]}"
