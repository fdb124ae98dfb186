/// Every op normbench knows, in the order of `--ops all`, of the output and of
/// the `--ops` help. Adding an op is one file in `Ops/` and one line here.
enum BenchOps {
    static let all: [any BenchOp] = [
        BatchNormBench(),
        BatchNormAddReLUBench(),
        BatchNormAddReLUBench(relu: false),
        LayerNormBench(),
        RMSNormBench(),
        ResidualLayerNormBench(),
        ResidualRMSNormBench(),
        GatedRMSNormBench(),
        UnfusedRowsBench(variant: .layerResidual),
        UnfusedRowsBench(variant: .rmsResidual),
        UnfusedRowsBench(variant: .rmsGate),
        InstanceNormBench(),
        GroupNormBench(),
        GroupNormSiLUBench(),
        GroupNormThenSiLUBench(),
        AdaINBench(),
        WeightNormBench(),
    ]

    static func named(_ name: String) -> (any BenchOp)? { all.first { $0.name == name } }

    /// "batchnorm,layernorm,…" for help texts.
    static var names: String { all.map(\.name).joined(separator: ",") }
    /// "layernorm, rmsnorm, …": the ops that `--layouts` does not apply to.
    static var layoutFreeNames: String { all.filter { !$0.hasLayout }.map(\.name).joined(separator: ", ") }
}
