// The 16-lane AVX-512 twins of the columns-geometry backward loops
// (`ColumnGradientsAVX512.h`, in C because Swift's SIMD types cannot target
// AVX-512 without a build flag): the per-column sums of `stridedColumns` and
// the dx rows of `applyColumns`, for 16–128 columns in multiples of 16
// (BatchNorm NHWC with C = 64 is the case that asked for them), on Float32,
// Float16 or BFloat16 tensors (x, dy, the mask and dx of one type). Each lane
// runs the 8-lane Swift code's operations in the same order and rounding, 16-bit
// values widened exactly and dx rounded as `store8` rounds it, so every result
// has the Swift loops' bits, on every thread count.
//
// Why: with 16 ymm registers the Swift row loop keeps 64 columns' Σg and Σg·x̂
// in stack memory (7 loads and 2 stores per 8 values) and the dx loop reloads
// its 4 coefficient vectors per 8 values; here the state stays in zmm
// registers down all the rows of a call, as in oneDNN's JIT kernel
// (docs/data/2026-12-06-bnnhwc/summary.md for the measurements).

import CNormSupport

enum ColumnGradientsWide {
    /// The C loops' element type, or nil for a type they do not take.
    private enum Kind { case f32, f16, bf16 }

    @inline(__always)
    private static func kind<E: NormElement>(_: E.Type) -> Kind? {
        if E.self == Float.self { return .f32 }
        if E.self == BFloat16.self { return .bf16 }
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        if E.self == Float16.self { return .f16 }
        #endif
        return nil
    }

    /// Whether the C loops may run for `columns` columns of x, dy (and the
    /// mask) of type `D` and dx of type `E`: one type for all of them (Float,
    /// Float16 or BFloat16), this build fuses `muladd` (a compile-time
    /// constant), the CPU has AVX-512 F/VL/BW/DQ
    /// (`NORMKERNELS_AVX512_COLUMNS=never` turns them off), and `columns` is a
    /// multiple of 16 in 16...128 (the tiles the C loops keep in registers).
    @inline(__always)
    static func runs<E: NormElement, D: NormElement>(_: E.Type, _: D.Type, columns: Int) -> Bool {
        E.self == D.self && kind(E.self) != nil && columns & 15 == 0 && (16...128).contains(columns)
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
        let x = UnsafeRawPointer(x), dy = UnsafeRawPointer(dy), mask = mask.map { UnsafeRawPointer($0) }
        switch kind(E.self) {
        case .f32?:
            nk_col512_gradient_sums_f32(x, dy, mask, rows, columns, stride, pivot, scale, shift, accG, accH)
        case .f16?:
            nk_col512_gradient_sums_f16(x, dy, mask, rows, columns, stride, pivot, scale, shift, accG, accH)
        case .bf16?:
            nk_col512_gradient_sums_bf16(x, dy, mask, rows, columns, stride, pivot, scale, shift, accG, accH)
        case nil:
            preconditionFailure("ColumnGradientsWide.sums: \(E.self) is not a C loop type")
        }
    }

    /// dx = a·g + (b·(x − p) + c) for `rows` rows (see
    /// `nk_col512_gradient_apply_f32`); only where `runs` is true.
    @inline(__always)
    static func apply<E: NormElement, D: NormElement>(
        _ x: UnsafePointer<E>, _ dy: UnsafePointer<D>, _ mask: UnsafePointer<D>?, _ dst: UnsafeMutablePointer<E>,
        rows: Int, columns: Int, stride: Int, pivot: UnsafePointer<Float>, a: UnsafePointer<Float>,
        b: UnsafePointer<Float>, c: UnsafePointer<Float>, streaming: Bool
    ) {
        let x = UnsafeRawPointer(x), dy = UnsafeRawPointer(dy), mask = mask.map { UnsafeRawPointer($0) }
        let dst = UnsafeMutableRawPointer(dst), streams: Int32 = streaming ? 1 : 0
        switch kind(E.self) {
        case .f32?:
            nk_col512_gradient_apply_f32(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streams)
        case .f16?:
            nk_col512_gradient_apply_f16(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streams)
        case .bf16?:
            nk_col512_gradient_apply_bf16(x, dy, mask, dst, rows, columns, stride, pivot, a, b, c, streams)
        case nil:
            preconditionFailure("ColumnGradientsWide.apply: \(E.self) is not a C loop type")
        }
    }
}
