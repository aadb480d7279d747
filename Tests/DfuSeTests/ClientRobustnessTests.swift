import DeviceProfiles
import Testing
import USBTransport

@testable import DfuSe

@Suite("DfuSe client: concurrency, cancellation, long runs")
struct ClientRobustnessTests {
    /// Waits (without real time) until the fake device holds a paused DNLOAD.
    func waitUntilPaused(_ device: FakeDfuSeDevice) async -> Bool {
        for _ in 0..<100_000 {
            if await device.isPaused { return true }
            await Task.yield()
        }
        return false
    }

    @Test("a call made while another is talking to the device is refused, and the first one finishes")
    func concurrentCallsAreRefused() async throws {
        let bench = try Bench()
        await bench.device.pauseNextDownload()
        let client = bench.client
        let write = Task { try await client.write(patternBytes(4096), at: 0x0800_0000) }
        #expect(await waitUntilPaused(bench.device))
        await #expect(throws: DfuSeError.concurrentCall(requested: "setAddress", running: "write")) {
            try await client.setAddress(0x0800_4000)
        }
        await bench.device.release()
        try await write.value
        #expect(await bench.device.bytes(at: 0x0800_0000, count: 4096) == patternBytes(4096))
        try await client.setAddress(0x0800_4000) // free again once the write is over
    }

    @Test("cancelling the task stops the run at the next wait, as a typed cancellation")
    func cancellation() async throws {
        let bench = try Bench()
        await bench.device.pauseNextDownload()
        let client = bench.client
        let write = Task { try await client.write(patternBytes(8192), at: 0x0800_0000) }
        #expect(await waitUntilPaused(bench.device))
        write.cancel()
        await bench.device.release()
        let result = await write.result
        #expect(throws: DfuSeError.cancelled(during: .setAddress(0x0800_0000))) { try result.get() }
        #expect(await bench.log.filter { $0.hasPrefix("DNLOAD") } == ["DNLOAD 0 SET_ADDRESS 0x8000000"])
    }

    @Test("a read longer than 65534 blocks sets the address again instead of wrapping wBlockNum")
    func readPastTheLastBlockNumber() async throws {
        let bench = try Bench(layout: l476Layout, transferSize: 8)
        let length = 65_534 * 8 + 16
        let content = patternBytes(length, seed: 3)
        await bench.device.preload(content, at: 0x0800_0000)
        #expect(try await bench.client.read(address: 0x0800_0000, length: length) == content)
        let log = await bench.log
        #expect(
            log.filter { $0.hasPrefix("DNLOAD 0 SET_ADDRESS") }
                == ["DNLOAD 0 SET_ADDRESS 0x8000000", "DNLOAD 0 SET_ADDRESS 0x807FFF0"])
        #expect(log.contains("UPLOAD 65535 (8)"))
        #expect(log.count { $0.hasPrefix("UPLOAD") } == 65_536)
    }

    @Test("a write longer than 65534 blocks sets the address again instead of wrapping wBlockNum")
    func writePastTheLastBlockNumber() async throws {
        let bench = try Bench(layout: l476Layout, transferSize: 8)
        let bytes = patternBytes(65_534 * 8 + 8, seed: 4)
        try await bench.client.write(bytes, at: 0x0800_0000)
        let downloads = await bench.log.filter { $0.hasPrefix("DNLOAD") }
        #expect(downloads.filter { $0.hasPrefix("DNLOAD 0") } == ["DNLOAD 0 SET_ADDRESS 0x8000000", "DNLOAD 0 SET_ADDRESS 0x807FFF0"])
        #expect(downloads.suffix(3) == ["DNLOAD 65535 (8 bytes)", "DNLOAD 0 SET_ADDRESS 0x807FFF0", "DNLOAD 2 (8 bytes)"])
        #expect(await bench.device.bytes(at: 0x0807_FFE8, count: 16) == Array(bytes.suffix(16)))
    }

    @Test("errors expose the address they concern")
    func errorAddresses() throws {
        let sector = try layout(f407Layout).sectors[2]
        #expect(DfuSeError.notErasable(sector, layout: "").address == 0x0800_8000)
        #expect(
            DfuSeError.deviceStatus(
                .errProg, state: .error, during: .download(block: 3, address: 0x0800_0800, length: 2048),
                sector: nil
            ).address == 0x0800_0800)
        #expect(DfuSeError.verifyMismatch(address: 0x0800_0004, expected: 1, actual: 2, sector: nil).address == 0x0800_0004)
        #expect(DfuSeError.emptyImage.address == nil)
    }
}
