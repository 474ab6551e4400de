#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the practitioners' page test
# (tests/integration/test_practitioner_page.py drives /usr/bin/chromium headless through
# /usr/bin/chromedriver). Installs them with apt-get when either is missing.
# Usage: scripts/chromium.sh install|check
set -euo pipefail
CHROMIUM=/usr/bin/chromium
DRIVER=/usr/bin/chromedriver

present() { [ -x "$CHROMIUM" ] && [ -x "$DRIVER" ]; }

case "${1:-}" in
  install)
    if present; then
      exit 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing Chromium (apt-get install chromium chromium-driver) ..."
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    fi
    present || { echo "Chromium is not installed: apt-get install chromium chromium-driver" >&2; exit 1; }
    ;;
  check)
    present || { echo "missing $CHROMIUM or $DRIVER: scripts/chromium.sh install" >&2; exit 1; }
    "$CHROMIUM" --version 2>/dev/null | head -1
    "$DRIVER" --version | head -1
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
