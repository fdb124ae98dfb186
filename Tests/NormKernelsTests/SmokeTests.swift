import Testing
@testable import NormKernels
@Test func smoke() { #expect(Topology.current.cores >= 1) }
