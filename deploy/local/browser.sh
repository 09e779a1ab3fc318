#!/usr/bin/env bash
# Installs Debian's Chromium, ChromeDriver and a font (a Recommends of chromium, which
# --no-install-recommends would leave out) for the browser tests of the setup pages, when missing.
# Idempotent; needs root (or sudo) on a Debian machine. Takes no input.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -e /usr/share/fonts/truetype/liberation ]; then
  log "chromium and chromedriver present"
  exit 0
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "error: need root to install chromium"; exit 1; fi
}

log "installing chromium and chromium-driver"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-liberation
/usr/bin/chromium --version >&2
/usr/bin/chromedriver --version >&2
