#!/usr/bin/env bash
# Builds the DocC documentation of NormKernels (Sources/NormKernels/NormKernels.docc
# plus every public symbol's doc comment) into .build-docs/NormKernels.doccarchive.
# Warnings fail the build: a broken link or a documented parameter that does not
# exist stops CI (tools/test.sh runs this first).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
graphs=.build-docs/symbol-graphs
rm -rf "$graphs" && mkdir -p "$graphs"
swift build --target NormKernels --scratch-path .build-docs \
    -Xswiftc -emit-symbol-graph -Xswiftc -emit-symbol-graph-dir -Xswiftc "$graphs" >&2
docc convert Sources/NormKernels/NormKernels.docc --additional-symbol-graph-dir "$graphs" \
    --fallback-display-name NormKernels --fallback-bundle-identifier org.normkernels.NormKernels \
    --output-path .build-docs/NormKernels.doccarchive --warnings-as-errors
echo "documentation: .build-docs/NormKernels.doccarchive" >&2
