#!/usr/bin/env bash
# Everything the tests need on a fresh machine: a virtual environment with bnlib, its book and
# test tools, ipywidgets 7 (Colab's) in .ipywidgets7, and Debian's Chromium for the browser test
# (installed here, never assumed present).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q -e '.[book,test]'
# ipywidgets 7 (what Colab ships) beside the venv's 8: the tests execute every chapter with it
rm -rf .ipywidgets7
.venv/bin/pip install -q --no-deps --target .ipywidgets7 "ipywidgets>=7.8,<8" "widgetsnbextension>=3.6,<4" \
  "jupyterlab_widgets>=1,<3" "ipython-genutils>=0.2,<0.3"
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium >/dev/null
fi
