#!/usr/bin/env python3
"""tools/peers.py on issue 18's small-map cases (gnsmall, 2026-12-07): adds two sets to
peers.SETS and runs peers.main() unchanged (same rounds, recycling allocator, merge).

    flock -x /work/notes/machine.lock python3 docs/data/2026-12-07-gnsmall/small_peers.py \
        --sets small-groupnorm,small-batchnorm --peers onednn,torch-recycling --rounds 3 \
        --budget-ms 150 --normbench /tmp/nb-base-gnsmall --out docs/data/2026-12-07-gnsmall/peers-base
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tools"))
import peers  # noqa: E402

peers.SETS["small-groupnorm"] = ["--ops", "groupnorm", "--groups", "32", "--layouts", "nchw,nhwc", "--shapes",
                                 "128x256x4x4,64x512x7x7,32x256x8x8,256x128x2x2,1024x512x1x1"]
peers.SETS["small-batchnorm"] = ["--ops", "batchnorm", "--layouts", "nchw", "--shapes",
                                 "256x512x2x2,128x256x4x4,512x1024x1x1,256x256x3x3,128x512x5x5"]
if __name__ == "__main__":
    peers.main()
