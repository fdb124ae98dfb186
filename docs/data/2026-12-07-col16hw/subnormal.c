// Standalone twin of the Swift test bfloat16HardwareSubnormalDx: BFloat16 dx of the
// AVX-512 column loop with a = 1, b = c = p = 0 must equal dy bit for bit when dy holds
// BFloat16 subnormals (Float32 subnormals, which vcvtneps2bf16 flushes to ±0).
// Build (repo root): clang -O2 -march=x86-64-v3 -ISources/CNormSupport/include
//   docs/data/2026-12-07-col16hw/subnormal.c Sources/CNormSupport/column_gradients_avx512.c
//   Sources/CNormSupport/bfloat16_hardware.c Sources/CNormSupport/cpu_features.c Sources/CNormSupport/half.c -lm
#include "ColumnGradientsAVX512.h"
#include "BFloat16Hardware.h"
#include <stdio.h>
#include <string.h>
int main(void) {
    enum { R = 40, C = 64 };
    static uint16_t x[R * C], dy[R * C], dx[R * C];
    float p[C], a[C], b[C], c[C];
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < R * C; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        uint16_t sign = (s & 1) ? 0x8000 : 0;
        dy[i] = sign | (uint16_t)((i / 16) % 4 == 3 ? 0x3F80 + (s >> 8) % 0x7F : 1 + (s >> 8) % 0x7F);
        x[i] = 0x3F80 + (uint16_t)((s >> 20) % 0x100);
    }
    for (int j = 0; j < C; j++) { p[j] = 0; a[j] = 1; b[j] = 0; c[j] = 0; }
    for (int streaming = 0; streaming < 2; streaming++) {
        memset(dx, 0xFF, sizeof dx);
        nk_col512_gradient_apply_bf16(x, dy, NULL, dx, R, C, C, p, a, b, c, streaming);
        int bad = 0;
        for (int i = 0; i < R * C; i++) bad += dx[i] != dy[i];
        printf("hardware rounding %d streaming %d: %d of %d differ, hardware calls %llu\n", nk_cpu_rounds_bf16(),
               streaming, bad, R * C, (unsigned long long)nk_col512_bf16_hardware_thread_calls());
    }
    return 0;
}
