#!/usr/bin/env bash
# Debian packages that edgefit's tests need: PyTorch, torchvision and onnx for /usr/bin/python3 (reference figures
# and fixture generators; FACTS: python3-torch 1.13, python3-torchvision 0.14, python3-onnx 1.12) and Chromium (the
# pipeline report is rendered in headless Chromium, driven by playwright-core). Run as root on a Debian machine;
# does nothing when they are already there. `.ci/run` calls it before `npm ci`.
set -euo pipefail
need=()
/usr/bin/python3 -c 'import torch, torchvision, onnx, numpy' >/dev/null 2>&1 || need+=(python3-torch python3-torchvision python3-onnx python3-numpy)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: missing ${need[*]} (install them with apt-get as root); the tests that need them will fail" >&2
  exit 0
fi
echo "setup-system: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
