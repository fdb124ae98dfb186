#!/usr/bin/env bash
# Builds tools/onednn's benchmark into .build-onednn/onednn_bench (ignored by git),
# installing Debian's oneDNN (libdnnl-dev, 2.6.3 on Debian 12) first when its
# header is missing. A measurement tool only: nothing in the package links it.
# Prints the binary's path on stdout.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -f /usr/include/oneapi/dnnl/dnnl.h ]; then
    echo "installing libdnnl-dev ..." >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libdnnl-dev >/dev/null
fi
OUT=.build-onednn/onednn_bench
SRC=(tools/onednn/onednn_bench.c tools/onednn/onednn_ops.c tools/onednn/reference.c)
if [ ! -x "$OUT" ] || [ -n "$(find "${SRC[@]}" tools/onednn/onednn_bench.h -newer "$OUT")" ]; then
    mkdir -p .build-onednn
    # -fopenmp: omp_set_num_threads for oneDNN's OpenMP runtime (libgomp on Debian).
    cc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wno-unused-parameter -fopenmp "${SRC[@]}" -o "$OUT" -ldnnl -lm
fi
echo "$OUT"
