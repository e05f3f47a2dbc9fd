#!/usr/bin/env bash
# Stops the node node-up.sh started and removes what it made outside $APPROVAL_STATE: the
# pods' processes (by their cgroups), containerd's shims, the mounts under the state
# directory, the bridge and the iptables rules tagged with this state directory. Nothing
# of another cluster is touched: its bridge carries another owner, its rules another tag,
# its cgroups another network number. Safe to run when nothing of it runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
shopt -s nullglob

NODE_DIR="$APPROVAL_STATE/node"
[[ "$(id -u)" -eq 0 && -d "$NODE_DIR" ]] || exit 0

# The cgroups of this node's pods: in each v1 hierarchy, or the one v2 directory.
cgroups=(/sys/fs/cgroup/*/"approval-$NODE_NET" /sys/fs/cgroup/"approval-$NODE_NET")

stop_process kubelet
# Every process of every pod of this node, wherever its shim is; then the shims, which
# carry our containerd's socket on their command line.
for _ in 1 2 3; do
  pids=""
  if ((${#cgroups[@]})); then
    pids="$(find "${cgroups[@]}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u || true)"
  fi
  [[ -n "$pids" ]] || break
  kill -9 $pids 2>/dev/null || true
  sleep 0.2
done
for cmdline in /proc/[0-9]*/cmdline; do
  args="$(tr '\0' ' ' <"$cmdline" 2>/dev/null)" || continue
  if [[ "$args" == *"-address $NODE_DIR/containerd.sock "* ]]; then
    pid="${cmdline#/proc/}"; kill -9 "${pid%/cmdline}" 2>/dev/null || true
  fi
done
stop_process containerd
stop_process registry
# Mounts of the node (snapshots, network namespaces, volumes), deepest first.
awk -v dir="$NODE_DIR/" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r |
  while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
for cgroup in "${cgroups[@]}"; do
  find "$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
done
if [[ "$(cat "/sys/class/net/$NODE_BRIDGE/ifalias" 2>/dev/null || true)" == "$APPROVAL_STATE" ]]; then
  ip link delete "$NODE_BRIDGE"
fi
node_rules
while iptables -t nat -D "${NODE_DNAT[@]}" 2>/dev/null; do :; done
for rule in NODE_INPUT NODE_FORWARD_OUT NODE_FORWARD_IN; do
  declare -n r="$rule"
  while iptables -D "${r[@]}" 2>/dev/null; do :; done
  unset -n r
done
