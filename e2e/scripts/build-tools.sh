#!/usr/bin/env bash
# Builds the pinned control-plane tools from Go modules, each once per version, into
# $APPROVAL_CACHE/bin. Idempotent: a tool already built is skipped. A build goes to a
# temporary name first, so an interrupted build never leaves a half binary behind.
#
#   build-tools.sh            build every tool
#   build-tools.sh kubectl    build only these (mag-controller and mag-webhook, for
#                             `make bench`, are built only when named)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "Go is needed to build the control plane (go.dev/dl); none on PATH"

k8s_ldflags() {
  local v="$KUBERNETES_VERSION" major minor
  major="${v#v}"; major="${major%%.*}"
  minor="$(echo "$v" | cut -d. -f2)"
  local flags="-s -w"
  # Without a stamped version, knative-based controllers (Tekton) refuse the server.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# A wrapper module for k8s.io/kubernetes: it pins the ~30 staging modules that upstream
# requires at v0.0.0 with `replace => ./staging/...` to their published v0.X.Y versions.
kubernetes_module() {
  local dir="$APPROVAL_CACHE/src/kubernetes-$KUBERNETES_VERSION"
  # A module made before the node's tools were added lacks them in its tool list.
  if [[ ! -f "$dir/go.sum" ]] || ! grep -q cmd/kubelet "$dir/go.mod"; then
    mkdir -p "$dir"
    local gomod staging="v0.${KUBERNETES_VERSION#v1.}"
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    {
      echo "module local/kubernetes-tools"
      echo
      grep -E '^go ' "$gomod"
      grep -E '^godebug ' "$gomod" || true
      echo
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo
      echo "replace ("
      grep -E '^\s+k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
      echo
      echo "tool ("
      for cmd in kube-apiserver kubectl kubelet kube-scheduler kube-controller-manager; do
        echo "	k8s.io/kubernetes/cmd/$cmd"
      done
      echo ")"
    } >"$dir/go.mod"
    (cd "$dir" && go mod tidy >/dev/null)
  fi
  echo "$dir"
}

# A wrapper module that requires MODULE@VERSION and copies its replace directives.
wrapper_module() {
  local name="$1" module="$2" version="$3" dir="$APPROVAL_CACHE/src/$1-$3"
  if [[ ! -f "$dir/go.sum" ]]; then
    mkdir -p "$dir"
    local gomod
    gomod="$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
    {
      echo "module local/$name"
      echo
      grep -E '^go ' "$gomod"
      grep -E '^godebug ' "$gomod" || true
      echo
      echo "require $module $version"
      echo
      # Single-line and block replace directives, with local paths dropped.
      python3 - "$gomod" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
lines = []
for block in re.findall(r'^replace \(\n(.*?)^\)', text, re.S | re.M):
    lines += [l.strip() for l in block.splitlines() if l.strip() and not l.strip().startswith('//')]
lines += re.findall(r'^replace ([^(\n].*)$', text, re.M)
for line in lines:
    if '=> ./' in line or '=> ../' in line:
        continue
    print('replace ' + line)
PY
      echo
      [[ -n "${4:-}" ]] && echo "tool $4"
    } >"$dir/go.mod"
    # etcd's own main package is the root of go.etcd.io/etcd/v3, which carries local
    # replaces; a three-line main calling etcdmain is the same program.
    if [[ "$name" == etcd ]]; then
      printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$dir/main.go"
    fi
    (cd "$dir" && go mod tidy >/dev/null)
  fi
  echo "$dir"
}

build() {
  local tool="$1" dir="$2" pkg="$3" ldflags="$4"
  local out; out="$(tool_path "$tool")"
  if [[ -x "$out" ]]; then
    log "$tool $(tool_version "$tool"): cached at $out"
    return
  fi
  mkdir -p "$(dirname "$out")"
  log "$tool $(tool_version "$tool"): building (this takes minutes on a cold cache)"
  local start=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp.$$" "$pkg")
  mv "$out.tmp.$$" "$out"
  log "$tool $(tool_version "$tool"): built in $((SECONDS - start))s"
}

# mag_main controller|webhook: upstream's cmd/<name>/main.go in the wrapper module, with one
# line added. knative serves health probes on a fixed :8080 in this version: fine in a pod,
# but on one host both binaries, and Tekton's controller of any other local cluster, want
# it. So the probe server is off; mag.sh reads readiness from the log line knative writes
# once the informers have synced ("Starting controllers...").
mag_main() {
  local dir
  dir="$(wrapper_module manual-approval-gate github.com/openshift-pipelines/manual-approval-gate "$MAG_VERSION" \
    github.com/openshift-pipelines/manual-approval-gate/cmd/controller)"
  mkdir -p "$dir/$1"
  sed '/^\(\s*\)ctx := .*$/{p;s//\1ctx = sharedmain.WithHealthProbesDisabled(ctx)/}' \
    "$(module_dir "github.com/openshift-pipelines/manual-approval-gate@$MAG_VERSION")/cmd/$1/main.go" >"$dir/$1/main.go"
  [[ "$(grep -c WithHealthProbesDisabled "$dir/$1/main.go")" == 1 ]] ||
    die "manual-approval-gate's cmd/$1/main.go changed: update mag_main in build-tools.sh"
  echo "$dir"
}

build_tool() {
  case "$1" in
    etcd)
      local dir; dir="$(wrapper_module etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION")"
      build etcd "$dir" . "-s -w" ;;
    kube-apiserver)
      build kube-apiserver "$(kubernetes_module)" k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_ldflags)" ;;
    kubectl|kubelet|kube-scheduler|kube-controller-manager)
      build "$1" "$(kubernetes_module)" "k8s.io/kubernetes/cmd/$1" "$(k8s_ldflags)" ;;
    tekton-controller)
      local dir; dir="$(wrapper_module tekton github.com/tektoncd/pipeline "$TEKTON_PIPELINE_VERSION" github.com/tektoncd/pipeline/cmd/controller)"
      # Static like the binaries below, so that a cold build compiles Tekton's packages once.
      CGO_ENABLED=0 build tekton-controller "$dir" github.com/tektoncd/pipeline/cmd/controller "-s -w $(k8s_ldflags)" ;;
    # Tekton's webhook and the binaries of its helper images (they run in pods on the node):
    # static, as ko builds them, so an image of the binary alone runs.
    tekton-webhook|tekton-entrypoint|tekton-nop|tekton-workingdirinit|tekton-sidecarlogresults)
      local dir; dir="$(wrapper_module tekton github.com/tektoncd/pipeline "$TEKTON_PIPELINE_VERSION" github.com/tektoncd/pipeline/cmd/controller)"
      CGO_ENABLED=0 build "$1" "$dir" "github.com/tektoncd/pipeline/cmd/${1#tekton-}" "-s -w $(k8s_ldflags)" ;;
    tkn)
      local dir; dir="$(wrapper_module tkn github.com/tektoncd/cli "$TKN_VERSION" github.com/tektoncd/cli/cmd/tkn)"
      build tkn "$dir" github.com/tektoncd/cli/cmd/tkn "-s -w -X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=$TKN_VERSION" ;;
    # OpenShift's manual-approval-gate, only for `make bench`: its controller and webhook.
    mag-controller|mag-webhook)
      local dir; dir="$(mag_main "${1#mag-}")"
      build "$1" "$dir" "./${1#mag-}" "-s -w $(k8s_ldflags)" ;;
    *) die "unknown tool $1 (etcd, kube-apiserver, kubectl, kubelet, kube-scheduler, kube-controller-manager, tekton-controller, tekton-webhook, tekton-entrypoint, tekton-nop, tekton-workingdirinit, tekton-sidecarlogresults, tkn, mag-controller, mag-webhook)" ;;
  esac
}

tools=("$@")
((${#tools[@]})) || tools=(etcd kube-apiserver kubectl kube-controller-manager kube-scheduler tekton-controller tkn)
# The node's tools, unless the node is off (NODE=0).
[[ "${NODE:-1}" == 0 || "$#" -gt 0 ]] || tools+=("${NODE_TOOLS[@]}")
for tool in "${tools[@]}"; do
  build_tool "$tool"
done
