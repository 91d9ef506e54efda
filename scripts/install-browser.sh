#!/usr/bin/env bash
# Debian's chromium and chromium-driver for the console's browser tests (ADR 0110): installed
# from the distribution's packages when missing, never a downloaded browser build.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "Installing Debian's chromium and chromium-driver for the console's browser tests..."
if [ "$(id -u)" = "0" ]; then
  apt-get install -y -q chromium chromium-driver >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null; }
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo apt-get install -y -q chromium chromium-driver >/dev/null || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
else
  echo "Cannot install chromium and chromium-driver (not root, no sudo): run 'apt-get install chromium chromium-driver' as root." >&2
  exit 1
fi
