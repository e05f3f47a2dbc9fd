#!/usr/bin/env bash
# Stops the node node-up.sh started and removes what it made outside $APPROVAL_STATE: the
# pods' processes (by their cgroups), containerd's shims, the mounts under the state
# directory, the bridge and its iptables rules. Safe to run when nothing of it runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

NODE_DIR="$APPROVAL_STATE/node"
BRIDGE="approval$NODE_NET"
[[ "$(id -u)" -eq 0 ]] || exit 0

stop_process kubelet
# Every process of every pod of this node, wherever its shim is.
for _ in 1 2 3; do
  pids="$(find /sys/fs/cgroup/*/approval-"$NODE_NET" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
  [[ -n "$pids" ]] || break
  kill -9 $pids 2>/dev/null || true
  sleep 0.2
done
pkill -9 -f "containerd-shim.* -address $NODE_DIR/containerd.sock" 2>/dev/null || true
stop_process containerd
stop_process registry
# Mounts of the node (snapshots, network namespaces, volumes), deepest first.
awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r |
  while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
for controller in /sys/fs/cgroup/*/approval-"$NODE_NET"; do
  [[ -d "$controller" ]] && find "$controller" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
while iptables -t nat -S PREROUTING 2>/dev/null | grep -q -- "-i $BRIDGE "; do
  rule="$(iptables -t nat -S PREROUTING | grep -- "-i $BRIDGE " | head -1 | sed 's/^-A //')"
  eval "iptables -t nat -D $rule"
done
while iptables -S FORWARD 2>/dev/null | grep -q -- "-i $BRIDGE "; do
  rule="$(iptables -S FORWARD | grep -- "-i $BRIDGE " | head -1 | sed 's/^-A //')"
  eval "iptables -D $rule"
done
