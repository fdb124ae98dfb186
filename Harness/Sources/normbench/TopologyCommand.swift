import ArgumentParser
import Foundation
import NormKernels

/// `normbench topology`: hwloc's view of the machine, and how each kernel
/// would partition a given shape.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology",
        abstract: "Print the topology (hwloc) and each kernel's plan (strategy, blocks, block size, workers) for a shape."
    )

    @Option(help: "Ops whose plan to print, comma-separated, or 'all'.")
    var op: String = "all"

    @Option(help: "Shape N,C,H,W (or NxCxHxW).")
    var shape: String = "32,64,56,56"

    @Option(help: "Layouts, comma-separated: nchw,nhwc.")
    var layout: String = "nchw,nhwc"

    @Option(help: "GroupNorm group count.")
    var groups: Int = 32

    @Option(help: "Thread count (default: the core count).")
    var threads: Int?

    @Option(help: "Pinning of workers: none, compact or scatter.")
    var affinity: String = "none"

    func run() throws {
        guard let s = Shape(parsing: shape) else { throw ValidationError("--shape: '\(shape)' is not N,C,H,W") }
        guard let pinning = Affinity(rawValue: affinity.lowercased()) else {
            throw ValidationError("--affinity: '\(affinity)' is not none, compact or scatter")
        }
        let ops = op == "all" ? BenchOps.all : try op.split(separator: ",").map { name -> any BenchOp in
            guard let o = BenchOps.named(String(name)) else { throw ValidationError("--op: '\(name)' is not an op") }
            return o
        }
        let layouts = try layout.split(separator: ",").map { name -> Layout in
            guard let l = Layout(rawValue: name.lowercased()) else { throw ValidationError("--layout: '\(name)' is not nchw or nhwc") }
            return l
        }
        let t = Topology.current
        print("cpu: \(MachineInfo.cpuModel())")
        print(t.description)
        print("core → (package, L3): " + t.coreLocality.enumerated().map { "\($0.offset)→(\($0.element.package), \($0.element.l3))" }
            .joined(separator: " "))
        print("default threading: \(Threading.default)")
        let threading = Threading(threads: threads ?? t.cores, affinity: pinning)
        if pinning != .none {
            print("\(pinning.rawValue) pinning: " + (0..<threading.threads)
                .map { "worker \($0) → core \(t.core(forWorker: $0, affinity: pinning).map(String.init) ?? "-")" }
                .joined(separator: ", "))
        }
        print("\nplans for \(s) with \(threading):")
        for o in ops {
            let opLayouts: [Layout?] = o.hasLayout ? layouts.map { $0 } : [nil]
            for l in opLayouts {
                let key = CaseKey(op: o, direction: .forwardTraining, layout: l, shape: s, groups: o.hasGroups ? groups : nil)
                do {
                    let plan = try o.plan(key, threading: threading)
                    print("\n\(o.name) \(key.layoutName)\(o.hasGroups ? " G\(groups)" : ""):")
                    print("  " + plan.description.replacingOccurrences(of: "\n", with: "\n  "))
                } catch {
                    print("\n\(o.name) \(key.layoutName): \(error)")
                }
            }
        }
    }
}
