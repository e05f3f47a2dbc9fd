#!/usr/bin/env bash
# Stops kube-apiserver with SIGNAL (TERM by default) and starts it again, with the flags
# cluster-up.sh gives it. For the chaos scenarios.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
stop_process kube-apiserver "${1:-TERM}"
"$(dirname "$0")/cluster-up.sh" --apiserver-only >/dev/null
