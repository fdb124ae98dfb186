// The 16-lane AVX-512 twins of the Float32 columns-geometry backward loops
// (`ColumnGradientsAVX512.h`, in C because Swift's SIMD types cannot target
// AVX-512 without a build flag): the per-column sums of `stridedColumns` and
// the dx rows of `applyColumns`, for 16–128 columns in multiples of 16
// (BatchNorm NHWC with C = 64 is the case that asked for them). Each lane runs
// the 8-lane Swift code's operations in the same order and rounding, so every
// result has the Swift loops' bits, on every thread count.
//
// Why: with 16 ymm registers the Swift row loop keeps 64 columns' Σg and Σg·x̂
// in stack memory (7 loads and 2 stores per 8 values) and the dx loop reloads
// its 4 coefficient vectors per 8 values; here the state stays in zmm
// registers down all the rows of a call, as in oneDNN's JIT kernel
// (docs/data/2026-12-06-bnnhwc/summary.md for the measurements).

import CNormSupport

enum ColumnGradientsWide {
    /// Whether the C loops may run for `columns` Float32 columns: this build
    /// fuses `muladd` (a compile-time constant), the CPU has AVX-512 F/VL/BW/DQ
    /// (`NORMKERNELS_AVX512_COLUMNS=never` turns them off), and `columns` is a
    /// multiple of 16 in 16...128 (the tiles the C loops keep in registers).
    @inline(__always)
    static func runs<E: NormElement, D: NormElement>(_: E.Type, _: D.Type, columns: Int) -> Bool {
        E.self == Float.self && D.self == Float.self && columns & 15 == 0 && (16...128).contains(columns)
            && nk_build_has_fma() != 0 && nk_cpu_runs_avx512_columns() != 0
    }

    /// `rows` rows of Σg and Σg·x̂ added into `accG` and `accH` (see
    /// `nk_col512_gradient_sums_f32`); only where `runs` is true.
    @inline(__always)
    static func sums<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, rows: Int, columns: Int,
        stride: Int, pivot: UnsafePointer<Float>, scale: UnsafePointer<Float>, shift: UnsafePointer<Float>,
        accG: UnsafeMutablePointer<Float>, accH: UnsafeMutablePointer<Float>
    ) {
        nk_col512_gradient_sums_f32(floats(x), floats(dy), mask.map(floats), rows, columns, stride,
                                    pivot, scale, shift, accG, accH)
    }

    /// dx = a·g + (b·(x − p) + c) for `rows` rows (see
    /// `nk_col512_gradient_apply_f32`); only where `runs` is true.
    @inline(__always)
    static func apply<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, _ dst: UnsafeMutablePointer<E>,
        rows: Int, columns: Int, stride: Int, pivot: UnsafePointer<Float>, a: UnsafePointer<Float>,
        b: UnsafePointer<Float>, c: UnsafePointer<Float>, streaming: Bool
    ) {
        nk_col512_gradient_apply_f32(floats(x), floats(dy), mask.map(floats),
                                     UnsafeMutableRawPointer(dst).assumingMemoryBound(to: Float.self),
                                     rows, columns, stride, pivot, a, b, c, streaming ? 1 : 0)
    }

    @inline(__always)
    private static func floats<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> {
        UnsafeRawPointer(p).assumingMemoryBound(to: Float.self)
    }
}
