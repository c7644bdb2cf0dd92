#!/bin/sh
# Installs the Airlock agent on an instance (or into an image being built):
#   sudo packaging/install.sh [path/to/airlock] [--no-lock-imds] [--no-start]
# Copies the binary to /usr/local/bin, installs the systemd unit, creates /var/lib/airlock
# (0700) and enables the agent so it runs at every boot. Idempotent: run it again to upgrade.
#
# The unit locks the metadata service to the agent's user before the agent starts (it needs
# iptables, and ip6tables for IPv6). --no-lock-imds leaves it open to every local user and
# container, for images whose other software must read it. (--lock-imds, once the way to ask
# for the lock, is still accepted.)
#
# When baking an image, pass --no-start and make sure /var/lib/airlock is empty in the image:
# the agent would discard another instance's state anyway, but credentials do not belong in an
# image.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-"$here/../target/release/airlock"}
[ $# -gt 0 ] && shift
lock=yes
start=yes
for arg in "$@"; do
  case $arg in
    --lock-imds) lock=yes ;;
    --no-lock-imds) lock=no ;;
    --no-start) start=no ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (the agent's state and profile are root's)" >&2
  exit 1
fi
if [ "$lock" = yes ] && ! command -v iptables >/dev/null 2>&1; then
  echo "install.sh: iptables is not installed, and the unit needs it to lock the metadata service: install it (iptables, or iptables-nft), or pass --no-lock-imds" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  echo "install.sh: no airlock binary at $bin (build with: cargo build --release -p airlock)" >&2
  exit 1
fi

install -m 0755 "$bin" /usr/local/bin/airlock
install -d -m 0700 /var/lib/airlock
install -d -m 0700 /root/.aws
install -d -m 0755 /usr/share/doc/airlock
install -m 0644 "$here/../docs/agent.md" /usr/share/doc/airlock/agent.md 2>/dev/null || true

unit=/etc/systemd/system/airlock-agent.service
if [ "$lock" = yes ]; then
  cp "$here/airlock-agent.service" "$unit.tmp"
else
  grep -v '^ExecStartPre=.* agent lock-imds' "$here/airlock-agent.service" >"$unit.tmp"
fi
chmod 0644 "$unit.tmp"
mv "$unit.tmp" "$unit"

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  systemctl enable airlock-agent.service
  if [ "$start" = yes ]; then
    systemctl restart airlock-agent.service
    echo "airlock agent installed and started: airlock agent status"
  else
    echo "airlock agent installed and enabled; it starts at the next boot"
  fi
else
  echo "airlock agent installed; systemd is not running here, so enable $unit at boot yourself"
fi
