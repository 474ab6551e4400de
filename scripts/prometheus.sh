#!/usr/bin/env bash
# Debian's prometheus package (the server and promtool) for the Prometheus tests:
# tests/unit/test_prometheus_rules.py runs promtool over deploy/prometheus/, and
# tests/integration/test_prometheus.py has a real server scrape a real worker. Installs it
# with apt-get when missing.
# The package would start a system-wide server on port 9090 (and recommends a node
# exporter on 9100): the tests run their own server on a free port, so services are kept
# from starting while it installs, recommends are left out, and a system service found
# running is stopped and disabled.
# Usage: scripts/prometheus.sh install|check
set -euo pipefail
PROMETHEUS=/usr/bin/prometheus
PROMTOOL=/usr/bin/promtool
POLICY=/usr/sbin/policy-rc.d

present() { [ -x "$PROMETHEUS" ] && [ -x "$PROMTOOL" ]; }

no_system_service() {
  if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  elif [ -x /etc/init.d/prometheus ]; then
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
}

case "${1:-}" in
  install)
    if present; then
      exit 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing Prometheus (apt-get install --no-install-recommends prometheus) ..."
      made_policy=""
      if [ ! -e "$POLICY" ]; then # no services start while packages install
        printf '#!/bin/sh\nexit 101\n' >"$POLICY"
        chmod +x "$POLICY"
        made_policy=1
      fi
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null || status=$?
      [ -n "$made_policy" ] && rm -f "$POLICY"
      [ "${status:-0}" = 0 ] || exit "$status"
      no_system_service
    fi
    present || { echo "Prometheus is not installed: apt-get install prometheus" >&2; exit 1; }
    ;;
  check)
    present || { echo "missing $PROMETHEUS or $PROMTOOL: scripts/prometheus.sh install" >&2; exit 1; }
    "$PROMETHEUS" --version 2>&1 | head -1
    "$PROMTOOL" --version 2>&1 | head -1
    ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
