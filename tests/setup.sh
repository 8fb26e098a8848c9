#!/usr/bin/env bash
# Everything the tests need on a fresh machine: a virtual environment with bnlib, its book and
# test tools, and Debian's Chromium for the browser test (installed here, never assumed present).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[book,test]'
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium >/dev/null
fi
