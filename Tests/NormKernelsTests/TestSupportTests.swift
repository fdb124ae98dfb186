// The test toolkit itself: the seeded streams must keep producing the data the
// suites were written and tuned against (a changed stream changes what a test
// checks without failing it). Golden values recorded from the three private
// SplitMix64 copies the numbered streams replaced, and from the labelled
// generator before the toolkit was merged.

import Testing
@testable import NormKernels

@Suite("Test toolkit: seeded data is stable")
struct TestSupportTests {
    @Test("numbered streams reproduce the data of the generators they replaced")
    func numberedStreams() {
        let backward = SeededStreams.backward.uniforms(3, seed: 1, -3...5).map(\.bitPattern)
        #expect(backward == [0x3f62_99ec, 0x3fd0_bd2c, 0xc01b_6813], "backward stream 1")
        let gradientCheck = SeededStreams.gradientCheck.uniforms(3, seed: 1, -2...2).map(\.bitPattern)
        #expect(gradientCheck == [0x3fbf_c828, 0xbf9e_7f95, 0xbf83_ad9a], "gradient-check stream 1")
        let plain = SeededStreams.plain.uniforms(3, seed: 1, -2...2, offset: 3).map(\.bitPattern)
        #expect(plain == [0x4051_0a2e, 0x407e_eb8e, 0x409c_49d2], "plain stream 1, offset 3")
        let normals = SeededStreams.backward.normals(3, seed: 53, mean: 1e4, std: 1e-2).map(\.bitPattern)
        #expect(normals == [0x461c_3fef, 0x461c_3ff6, 0x461c_4011], "backward normals, stream 53")
    }

    @Test("a labelled generator depends only on its label (FNV-1a of the label seeds SplitMix64)")
    func labelledGenerator() {
        var rng = SplitMix64("in-place backward label")
        #expect((0..<3).map { _ in rng.next() } == [0xec70_e9d6_f942_9d05, 0x934a_e36a_5d9b_9243, 0x14f6_ff04_22dd_62c2])
        var other = SplitMix64("in-place backward label ")
        #expect(other.next() != 0xec70_e9d6_f942_9d05, "a different label, a different stream")
    }
}
