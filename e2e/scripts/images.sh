#!/usr/bin/env bash
# The base images of the local node, built without a container engine and cached by their
# inputs under $APPROVAL_CACHE/images (see e2e/src/image.rs):
#   busybox  Debian's busybox-static with a link per applet: the step image of the suite's
#            and the demo's tasks
#   pause    a static pause process (pause.c): the pod sandbox image
# Prints the archive of each. Installs busybox-static and a C compiler with apt-get when
# missing (root), else says what to install.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

IMAGES="$APPROVAL_CACHE/images"
mkdir -p "$IMAGES"
IMAGE_TOOL=(cargo run --locked --quiet --manifest-path "$REPO_DIR/Cargo.toml" -p approval-e2e --bin image --)

need() {
  local binary="$1" package="$2"
  [[ -x "$binary" ]] && return
  if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null; then
    log "installing $package"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null ||
      { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$package" >/dev/null; }
  fi
  [[ -x "$binary" ]] || die "$binary missing: install Debian's $package"
}

# The cache key of an image: its inputs' contents.
key() { cat "$@" | sha256sum | cut -c1-16; }

busybox() {
  need /bin/busybox busybox-static
  local version; version="$(dpkg-query -W -f '${Version}' busybox-static | tr -c 'a-zA-Z0-9.\n' '-')"
  local out="$IMAGES/busybox-$(key /bin/busybox).tar"
  if [[ ! -s "$out" ]]; then
    local links=()
    for applet in $(/bin/busybox --list); do
      [[ "$applet" == busybox ]] || links+=(--link "/bin/busybox:/bin/$applet")
    done
    "${IMAGE_TOOL[@]}" files --tag "127.0.0.1:5000/busybox:$version" --out "$out" \
      --file /bin/busybox:/bin/busybox "${links[@]}" --entrypoint /bin/sh >&2
  fi
  echo "$out"
}

pause() {
  need /usr/bin/gcc gcc
  local source="$E2E_DIR/scripts/pause.c"
  local out="$IMAGES/pause-$(key "$source").tar"
  if [[ ! -s "$out" ]]; then
    local build; build="$(mktemp -d)"
    gcc -static -O2 -o "$build/pause" "$source"
    "${IMAGE_TOOL[@]}" files --tag "127.0.0.1:5000/pause:3.10" --out "$out" \
      --file "$build/pause:/pause" --entrypoint /pause --user 65535:65535 >&2
    rm -rf "$build"
  fi
  echo "$out"
}

for image in "${@:-busybox pause}"; do
  for name in $image; do
    case "$name" in
      busybox) busybox ;;
      pause) pause ;;
      *) die "unknown image $name (busybox | pause)" ;;
    esac
  done
done
