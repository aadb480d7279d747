import DeviceProfiles
import FirmwareImage
import Testing
import USBTransport

@testable import DfuSe

@Suite("DfuSe client: running a flash plan")
struct ExecuteTests {
    let f407 = McuFamily.f407.defaultFlashMode.layout

    func plan(_ image: NormalizedImage, unchanged: Set<UInt32> = []) throws -> FlashPlan {
        try FlashPlan(image: image, layout: f407, family: .f407, transferSize: 2048, unchangedSectors: unchanged)
    }

    @Test("execute erases, writes, verifies and leaves the device in dfuIDLE with the image in flash")
    func fullRun() async throws {
        let bench = try Bench(quirks: McuFamily.f407.quirks)
        let firmware = try image([(0x0800_0000, 40 * 1024)], granularity: 4)
        let report = try await bench.client.execute(try plan(firmware), image: firmware)

        #expect(await bench.device.bytes(at: 0x0800_0000, count: 40 * 1024) == firmware.segments[0].bytes)
        #expect(await bench.device.programCount.values.allSatisfy { $0 == 1 })
        #expect(await bench.device.erasedSectorStarts == [0x0800_4000, 0x0800_8000, 0x0800_0000])
        #expect(await bench.device.state == .dfuIdle)
        #expect(report.erasedSectors == 3)
        #expect(report.bytesWritten == 40 * 1024)
        #expect(report.bytesVerified == 40 * 1024)
        #expect(report.controlTransfers == (await bench.client.controlTransferCount))
        #expect(report.duration == bench.clock.now())
    }

    @Test("the vector-table block is the very last DNLOAD of the run, after its sector's erase")
    func vectorTableLastOnTheWire() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_0000, 20 * 1024)], granularity: 4)
        try await bench.client.execute(try plan(firmware), image: firmware, verify: false)
        let downloads = await bench.log.filter { $0.hasPrefix("DNLOAD") }
        #expect(
            downloads == [
                "DNLOAD 0 ERASE 0x8004000",
                "DNLOAD 0 SET_ADDRESS 0x8004000", "DNLOAD 2 (2048 bytes)", "DNLOAD 3 (2048 bytes)",
                "DNLOAD 0 ERASE 0x8000000",
                "DNLOAD 0 SET_ADDRESS 0x8000800", "DNLOAD 2 (2048 bytes)", "DNLOAD 3 (2048 bytes)", "DNLOAD 4 (2048 bytes)",
                "DNLOAD 5 (2048 bytes)", "DNLOAD 6 (2048 bytes)", "DNLOAD 7 (2048 bytes)", "DNLOAD 8 (2048 bytes)",
                "DNLOAD 0 SET_ADDRESS 0x8000000", "DNLOAD 2 (2048 bytes)"
            ])
        #expect(!(await bench.log.contains { $0.hasPrefix("UPLOAD") }), "verify: false reads nothing back")
    }

    @Test("events come in a legal order: prepare, program with sector and byte counts, verify")
    func eventOrder() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_0000, 6 * 1024)], granularity: 4)
        try await bench.client.execute(try plan(firmware), image: firmware)
        let events = bench.events.events
        let phases = events.compactMap { event -> String? in
            switch event {
            case .phaseStarted(let phase): "+\(phase)"
            case .phaseFinished(let phase): "-\(phase)"
            default: nil
            }
        }
        #expect(phases == ["+prepare", "-prepare", "+program", "-program", "+verify", "-verify"])
        #expect(events.contains(.sectorErased(f407.sectors[0], number: 1, total: 1)))
        let written = events.compactMap { if case .bytesWritten(let done, let total, _) = $0 { [done, total] } else { nil } }
        #expect(written == [[2048, 6144], [4096, 6144], [6144, 6144]])
        #expect(events.last { if case .bytesVerified = $0 { true } else { false } } == .bytesVerified(done: 6144, total: 6144))
    }

    @Test("a read-back mismatch is a typed error naming the first differing address and its sector")
    func verifyMismatch() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_0000, 24 * 1024)], granularity: 4)
        await bench.device.configure { $0.corruptAddress = 0x0800_4010 }
        let expected = try #require(firmware.byte(at: 0x0800_4010))
        await #expect(
            throws: DfuSeError.verifyMismatch(
                address: 0x0800_4010, expected: expected, actual: ~expected,
                sector: f407.sectors[1])
        ) {
            try await bench.client.execute(try plan(firmware), image: firmware)
        }
    }

    @Test("unchanged sectors are neither erased nor written, and the rest still verifies")
    func skipUnchangedOnTheDevice() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_0000, 48 * 1024)], granularity: 4)
        // The application reported sector 1 already holds these bytes.
        let sector1 = Array(firmware.segments[0].bytes[0x4000..<0x8000])
        await bench.device.preload(sector1, at: 0x0800_4000)
        let report = try await bench.client.execute(try plan(firmware, unchanged: [0x0800_4000]), image: firmware)
        #expect(await bench.device.erasedSectorStarts == [0x0800_8000, 0x0800_0000])
        #expect(await bench.device.programCount.keys.allSatisfy { $0 < 0x0800_4000 || $0 >= 0x0800_8000 })
        #expect(await bench.device.bytes(at: 0x0800_0000, count: 48 * 1024) == firmware.segments[0].bytes)
        #expect(report.bytesWritten == 32 * 1024)
    }

    @Test("a plan executed with another image is refused before anything is sent")
    func planImageMismatch() async throws {
        let bench = try Bench()
        let made = try image([(0x0800_0000, 4096)], granularity: 4, seed: 1)
        let other = try image([(0x0800_0000, 4096)], granularity: 4, seed: 2)
        let error = await #expect(throws: DfuSeError.self) {
            try await bench.client.execute(try plan(made), image: other)
        }
        guard case .planDoesNotMatchImage = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        let shorter = try image([(0x0800_0000, 2048)], granularity: 4)
        await #expect(throws: DfuSeError.self) { try await bench.client.execute(try plan(made), image: shorter) }
        #expect(await bench.log.isEmpty)
    }

    @Test("a plan made for another wTransferSize is refused before anything is sent")
    func transferSizeMismatch() async throws {
        let bench = try Bench(layout: h753Layout, transferSize: 1024)
        let firmware = try image([(0x0800_0000, 4096)], granularity: 32)
        let wrong = try FlashPlan(image: firmware, layout: FlashLayout(parsing: h753Layout), family: .h753, transferSize: 2048)
        await #expect(throws: DfuSeError.planTransferSizeMismatch(plan: 2048, device: 1024)) {
            try await bench.client.execute(wrong, image: firmware)
        }
        #expect(await bench.log.isEmpty)
    }

    @Test("one set-address per run needs about half the transfers of dfu-util's one per block")
    func transferCountAgainstPerBlockSetAddress() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_4000, 64 * 1024)], granularity: 4) // sectors 1–3 and part of 4
        let flashPlan = try plan(firmware)
        try await bench.client.execute(flashPlan, image: firmware, verify: false)
        let statistics = await bench.client.statistics
        let blocks = flashPlan.blockCount
        #expect(blocks == 32)
        // Each set-address, erase and block costs DNLOAD + 2 GETSTATUS on this device; plus the start check.
        let ours = 1 + 3 * (flashPlan.erasedSectors.count + flashPlan.setAddressCount + blocks)
        #expect(statistics.controlTransfers == ours)
        let perBlockSetAddress = 1 + 3 * (flashPlan.erasedSectors.count + 2 * blocks)
        #expect(perBlockSetAddress - ours == 3 * (blocks - flashPlan.setAddressCount))
        #expect(Double(ours) / Double(perBlockSetAddress) < 0.6)
    }

    @Test("an erase that fails mid-plan stops the run with the sector named, and the device is back in dfuIDLE")
    func eraseFailureStops() async throws {
        let bench = try Bench()
        await bench.device.configure { $0.statusFault = (.erase, .errErase) }
        let firmware = try image([(0x0800_0000, 20 * 1024)], granularity: 4)
        await #expect(
            throws: DfuSeError.deviceStatus(
                .errErase, state: .error, during: .eraseSector(0x0800_4000),
                sector: f407.sectors[1])
        ) {
            try await bench.client.execute(try plan(firmware), image: firmware)
        }
        #expect(await bench.device.programCount.isEmpty, "nothing was written after the failed erase")
        #expect(await bench.device.state == .dfuIdle)
    }

    @Test("a second run after an interrupted one finishes the job: the plan erases before it writes")
    func secondRunFinishes() async throws {
        let bench = try Bench()
        let firmware = try image([(0x0800_0000, 20 * 1024)], granularity: 4)
        await bench.device.configure { $0.statusFault = (.data, .errProg) }
        await #expect(throws: DfuSeError.self) { try await bench.client.execute(try plan(firmware), image: firmware) }
        try await bench.client.execute(try plan(firmware), image: firmware)
        #expect(await bench.device.bytes(at: 0x0800_0000, count: 20 * 1024) == firmware.segments[0].bytes)
    }
}
