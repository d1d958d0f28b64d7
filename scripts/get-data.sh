#!/usr/bin/env bash
# Make Fashion-MNIST available offline: Debian's dataset-fashion-mnist package puts the four
# IDX files in /usr/share/datasets/fashion-mnist. Installs it when root and the files are absent.
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
have() { for f in "${files[@]}"; do [ -f "$dir/$f" ] || return 1; done; }
if [ -n "${BACKWARD_DATA:-}" ]; then echo "data: BACKWARD_DATA=$BACKWARD_DATA (loader looks there first)"; fi
if have; then echo "data: Fashion-MNIST present in $dir"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "data: installing Debian package dataset-fashion-mnist"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  have && { echo "data: Fashion-MNIST installed in $dir"; exit 0; }
fi
echo "data: Fashion-MNIST not in $dir and not installable here (need root and apt-get)." >&2
echo "      Chapters that need it will try torchvision's download, or set BACKWARD_DATA to a" >&2
echo "      folder holding the four IDX .gz files." >&2
