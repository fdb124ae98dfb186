#!/usr/bin/env bash
# Installs what the build needs on a fresh Debian machine: hwloc's headers and
# library (libhwloc-dev). Does nothing when they are already there.
set -euo pipefail
if ! pkg-config --exists hwloc 2>/dev/null || [ ! -f /usr/include/hwloc.h ]; then
    echo "installing libhwloc-dev ..." >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libhwloc-dev pkg-config >/dev/null
fi
