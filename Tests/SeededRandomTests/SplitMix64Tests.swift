import SeededRandom
import Testing

@Suite("SplitMix64: a printed seed replays the same sequence")
struct SplitMix64Tests {
    @Test("seed 0 gives the reference algorithm's first outputs (Vigna's splitmix64.c)")
    func referenceSequence() {
        var generator = SplitMix64(seed: 0)
        #expect(
            [generator.next(), generator.next(), generator.next()] == [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4, 0x06C4_5D18_8009_454F])
    }

    @Test("two generators from one seed agree; the next seed differs")
    func replay() {
        var first = SplitMix64(seed: 0x5EED)
        var second = SplitMix64(seed: 0x5EED)
        var other = SplitMix64(seed: 0x5EEE)
        let a = (0..<100).map { _ in first.next() }
        #expect(a == (0..<100).map { _ in second.next() })
        #expect(a != (0..<100).map { _ in other.next() })
    }
}
