#!/usr/bin/env bash
# Compacts etcd's history up to its current revision, so that nothing can resume a watch
# from an older resourceVersion: the API server answers such a watch with 410 Gone. Prints
# the revision. For the chaos scenarios (etcd's JSON gateway, on loopback).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
etcd="http://127.0.0.1:$ETCD_PORT/v3"
# Any range request answers with the current revision in its header.
revision="$(curl -fsS -X POST "$etcd/kv/range" -d '{"key": "AA=="}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])')"
curl -fsS -X POST "$etcd/kv/compaction" -d "{\"revision\": \"$revision\", \"physical\": true}" >/dev/null
echo "$revision"
