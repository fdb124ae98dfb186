// The test toolkit itself: the seeded streams must keep producing the data the
// suites were written and tuned against (a changed stream changes what a test
// checks without failing it). Golden values recorded from the three private
// SplitMix64 copies the numbered streams replaced.

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

    @Test("a labelled generator depends only on its label")
    func labelledGenerator() {
        var a = SplitMix64("label"), b = SplitMix64("label"), c = SplitMix64("other label")
        let first = (0..<4).map { _ in a.next() }
        #expect(first == (0..<4).map { _ in b.next() })
        #expect(first != (0..<4).map { _ in c.next() })
    }
}
