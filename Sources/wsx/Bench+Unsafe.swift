import ArgumentParser
@_spi(Reference) import WSCore
import WSTesting

/// Micro benchmarks of the engine's fast paths, each beside a baseline measured in the same run
/// (machines are shared and noisy: compare ratios, not absolute figures across runs).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark unmasking, UTF-8 validation and frame decoding against in-run baselines.",
        discussion: """
            Build in release mode: debug figures are meaningless. Each figure is the best of
            --repeats runs of at least --seconds each.

            Groups: unmask, utf8, decode, deflate. The alloc group decodes exactly --frames
            16-byte frames and prints nothing else, for counting heap allocations with valgrind:
              valgrind --tool=dhat --dhat-out-file=/dev/null .build/release/wsx bench --only alloc --frames 100000
            deflate-ours, deflate-zlib, inflate-ours and inflate-zlib run --frames 16 KiB
            messages through our codec or zlib directly, for counting instructions:
              valgrind --tool=callgrind --callgrind-out-file=/dev/null .build/release/wsx bench --only inflate-ours --frames 1000
            The bomb group sends a 512 MiB decompression bomb to a server engine and reports
            the failure and peak memory:
              valgrind --tool=dhat --dhat-out-file=/dev/null .build/release/wsx bench --only bomb

            Examples:
              swift run -c release wsx bench
              swift run -c release wsx bench --only utf8 --only decode --seconds 1
              swift run -c release wsx bench --only deflate
            """)

    @Option(name: .customLong("only"), help: "Run only these groups (unmask, utf8, decode, deflate, alloc, bomb); repeatable.")
    var groups: [String] = []

    @Option(help: "Minimum duration of one measurement, in seconds.")
    var seconds: Double = 0.25

    @Option(help: "Measurements per figure; the best is reported.")
    var repeats: Int = 5

    @Option(help: "Frames to decode in the alloc group.")
    var frames: Int = 100_000

    @Option(help: "Payload size of the frames in the alloc group, in bytes.")
    var size: Int = 16

    @Flag(help: "In the alloc group, take data with nextEvent(lendingData:) instead of nextEvent().")
    var lend = false

    func run() throws {
        let all = ["unmask", "utf8", "decode", "deflate"]
        let selected = groups.isEmpty ? all : groups
        let untimed = ["alloc", "bomb", "deflate-ours", "deflate-zlib", "inflate-ours", "inflate-zlib"]
        for g in selected where !(all + untimed).contains(g) {
            throw ValidationError("unknown group \(g); choose from \((all + untimed).joined(separator: ", "))")
        }
        let timer = Timer(minSeconds: seconds, repeats: repeats)
        if selected.contains("alloc") { try allocRun(frames: frames, size: size, lend: lend); return }
        if selected.contains("bomb") { try bombRun(); return }
        for path in ["deflate-ours", "deflate-zlib", "inflate-ours", "inflate-zlib"] where selected.contains(path) {
            codecRun(path, count: frames)
            return
        }
        print("swift-ws engine benchmarks (best of \(repeats) × ≥\(seconds) s; ratio = ours / baseline, same run)")
        if selected.contains("unmask") { unmaskBench(timer) }
        if selected.contains("utf8") { utf8Bench(timer) }
        if selected.contains("decode") { try decodeBench(timer) }
        if selected.contains("deflate") { try deflateBench(timer) }
    }
}

// MARK: - Measurement

/// Runs a body repeatedly and reports the best rate.
struct Timer {
    var minSeconds: Double
    var repeats: Int

    /// Best units per second, where one call of `body` does `units` units of work. Calls are
    /// batched so that reading the clock (tens of nanoseconds) is negligible.
    func rate(units: Double, _ body: () -> Void) -> Double {
        let clock = ContinuousClock()
        var batch = 1
        while true {  // calibrate: a batch should take at least 2 ms
            let start = clock.now
            for _ in 0..<batch { body() }
            if (clock.now - start).seconds >= 0.002 || batch >= 1 << 30 { break }
            batch *= 2
        }
        var best = 0.0
        for _ in 0..<repeats {
            var iterations = 0
            let start = clock.now
            var elapsed = 0.0
            repeat {
                for _ in 0..<batch { body() }
                iterations += batch
                elapsed = (clock.now - start).seconds
            } while elapsed < minSeconds
            best = max(best, units * Double(iterations) / elapsed)
        }
        return best
    }
}

extension Timer {
    /// Best rates of `ours` and `baseline`, measured alternately (one repeat of each in turn),
    /// so that both see the same moments of a noisy machine.
    func compare(units: Double, ours: () -> Void, baseline: () -> Void) -> (ours: Double, baseline: Double) {
        let once = Timer(minSeconds: minSeconds, repeats: 1)
        var best = (ours: 0.0, baseline: 0.0)
        for _ in 0..<repeats {
            best.ours = max(best.ours, once.rate(units: units, ours))
            best.baseline = max(best.baseline, once.rate(units: units, baseline))
        }
        return best
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }

func row(_ name: String, _ value: Double, _ unit: String, baseline: (String, Double)? = nil) {
    var line = name.padded(to: 44) + format(value, unit)
    if let (bname, b) = baseline {
        line += "   baseline \(bname): \(format(b, unit))   ratio \(String(format2: value / b))×"
    }
    print(line)
}

func format(_ v: Double, _ unit: String) -> String {
    switch unit {
    case "GB/s": return "\(String(format2: v / 1e9)) GB/s"
    case "M/s": return "\(String(format2: v / 1e6)) M frames/s"
    case "MB/s": return "\(String(format2: v / 1e6)) MB/s"
    case "msg/s": return "\(String(format2: v / 1e3)) k msg/s"
    default: return "\(v) \(unit)"
    }
}

extension String {
    init(format2 v: Double) {
        let r = (v * 100).rounded() / 100
        var s = "\(r)"
        if let dot = s.firstIndex(of: "."), s.distance(from: dot, to: s.endIndex) == 2 { s += "0" }
        self = s
    }

    func padded(to n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}

// MARK: - Unmask

/// Which kernel the dispatching entry points use on this CPU.
let cpuKernel = WSMaskKey.usesAVX2 ? "AVX2" : "portable"

func unmaskBench(_ timer: Timer) {
    let size = 16 << 10
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 64)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0x55)
    let key = WSMaskKey(0x37, 0xfa, 0x21, 0x3d)
    let ours = timer.rate(units: Double(size)) { key.apply(to: buffer, phase: 1) }
    let portable = timer.rate(units: Double(size)) { key.applyPortable(to: buffer, phase: 1) }
    let reference = timer.rate(units: Double(size)) { key.applyReference(to: buffer, phase: 1) }
    let bytewise = timer.rate(units: Double(size)) { naiveUnmask(buffer, key: key, phase: 1) }
    blackHole(buffer[7])
    print("\n[unmask] 16 KiB in-cache buffer, phase 1 (target ≥ 40 GB/s)")
    row("WSMaskKey.apply (\(cpuKernel))", ours, "GB/s", baseline: ("byte loop", bytewise))
    row("  portable Swift kernel (SIMD16<UInt32>)", portable, "GB/s", baseline: ("byte loop", bytewise))
    row("  reference (RFC definition)", reference, "GB/s")
}

/// A byte-at-a-time loop with a modulo per byte, as naive implementations (and SwiftNIO's) do.
@inline(never)
func naiveUnmask(_ buffer: UnsafeMutableRawBufferPointer, key: WSMaskKey, phase: Int) {
    let k = [key[0], key[1], key[2], key[3]]
    for i in 0..<buffer.count {
        buffer[i] ^= k[(phase + i) % 4]
    }
}

// MARK: - UTF-8

/// Text mixing 1-, 2-, 3- and 4-byte characters in equal numbers (about 90% non-ASCII bytes).
func mixedText(bytes: Int) -> [UInt8] {
    var rng = WSSeededRandom(seed: 1)
    let samples: [[UInt8]] = ["a", "é", "ж", "€", "中", "😀", "b", "ß"].map { Array($0.utf8) }
    var out: [UInt8] = []
    out.reserveCapacity(bytes + 4)
    while out.count < bytes { out += samples[Int(rng.next() % UInt64(samples.count))] }
    while String(validating: out, as: UTF8.self) == nil || out.count > bytes {
        out.removeLast()
    }
    return out
}

func utf8Bench(_ timer: Timer) {
    print("\n[utf8] validation (targets ≥ 20 GB/s ASCII, ≥ 3 GB/s mixed)")
    let ascii = [UInt8](repeating: 0x61, count: 64 << 10)
    let mixed = mixedText(bytes: 64 << 10)
    let nonASCII = Double(mixed.filter { $0 >= 0x80 }.count) / Double(mixed.count)
    for (name, text) in [("ASCII 64 KiB", ascii), ("mixed 64 KiB (\(Int(nonASCII * 100))% non-ASCII bytes)", mixed)] {
        let ours = text.withUnsafeBytes { raw in
            timer.rate(units: Double(raw.count)) {
                var v = WSUTF8Validator()
                blackHole(v.validate(raw))
                blackHole(v.isComplete)
            }
        }
        let stdlib = timer.rate(units: Double(text.count)) {
            blackHole(String(validating: text, as: UTF8.self))
        }
        let portable = text.withUnsafeBytes { raw in
            timer.rate(units: Double(raw.count)) {
                var v = WSUTF8Validator()
                blackHole(v.validatePortable(raw))
            }
        }
        let reference = text.withUnsafeBytes { raw in
            timer.rate(units: Double(raw.count)) {
                var v = WSUTF8Validator()
                blackHole(v.validateReference(raw))
            }
        }
        row("WSUTF8Validator (\(cpuKernel)), \(name)", ours, "GB/s", baseline: ("String(validating:)", stdlib))
        row("  portable Swift kernel, \(name)", portable, "GB/s", baseline: ("String(validating:)", stdlib))
        row("  reference (switch DFA), \(name)", reference, "GB/s")
    }
}

// MARK: - Frame decoding

/// `count` masked binary frames with `size`-byte payloads, as a client sends them.
func maskedFrames(count: Int, size: Int, opcode: WSOpcode = .binary, payload: [UInt8]? = nil) -> [UInt8] {
    var rng = WSSeededRandom(seed: 2)
    var out: [UInt8] = []
    let body = payload ?? (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    out.reserveCapacity(count * (size + 14))
    for _ in 0..<count {
        let key = WSMaskKey(rawValue: UInt32(truncatingIfNeeded: rng.next()))
        WSFrameHeader(opcode: opcode, maskKey: key, payloadLength: UInt64(body.count)).encode(into: &out)
        var p = body
        key.apply(to: &p)
        out += p
    }
    return out
}

/// Feeds `input` to a server engine in `chunk`-byte reads, pulling every event; returns frames seen.
@inline(never)
func decodeAll(_ ws: inout WSProtocol, _ input: UnsafeRawBufferPointer, chunk: Int) -> Int {
    var frames = 0
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        ws.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
        while let event = ws.nextEvent() {
            switch event {
            case .fragment(let f): if f.isFinal { frames &+= 1 }
            case .binary, .text: frames &+= 1
            default: break
            }
        }
        offset = end
    }
    return frames
}

/// As `decodeAll`, with the lending API: payloads are read in place, no slice is retained.
@inline(never)
func decodeAllLending(_ ws: inout WSProtocol, _ input: UnsafeRawBufferPointer, chunk: Int) -> Int {
    var frames = 0
    var bytes = 0
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        ws.receive(UnsafeRawBufferPointer(rebasing: input[offset..<end]))
        while let result = ws.nextEvent(lendingData: { _, data, isFinal in
            bytes &+= data.count
            if isFinal { frames &+= 1 }
        }) {
            if case .event = result { break }
        }
        offset = end
    }
    blackHole(bytes)
    return frames
}

/// A straightforward decoder of the kind the engine replaces: buffer whole frames, decode the
/// header field by field, copy each payload into its own array, unmask it byte by byte.
@inline(never)
func naiveDecodeAll(_ input: UnsafeRawBufferPointer, chunk: Int) -> Int {
    var buffer: [UInt8] = []
    var frames = 0
    var offset = 0
    while offset < input.count {
        let end = min(input.count, offset + chunk)
        buffer += UnsafeRawBufferPointer(rebasing: input[offset..<end])
        offset = end
        var start = 0
        while case .header(let h, let length) = WSFrameHeader.decodeReference(buffer[start...]),
              buffer.count - start - length >= Int(h.payloadLength) {
            var payload = Array(buffer[(start + length)..<(start + length + Int(h.payloadLength))])
            if let key = h.maskKey {
                for i in payload.indices { payload[i] ^= key[i] }
            }
            blackHole(payload)
            frames += 1
            start += length + Int(h.payloadLength)
        }
        buffer.removeFirst(start)
    }
    return frames
}

func decodeBench(_ timer: Timer) throws {
    print("\n[decode] server engine: receive 64 KiB reads, parse, unmask, deliver (targets ≥ 20 M frames/s at 16 B, ≥ 15 GB/s at 64 KiB)")
    print("         (inputs cycle through ≤ 1.3 MB, as a socket adapter's read buffer stays in cache)")
    var streaming = WSProtocol.Configuration()
    streaming.delivery = .streaming
    streaming.pingInterval = nil
    var whole = streaming
    whole.delivery = .wholeMessages

    for (size, count) in [(16, 60_000), (64 << 10, 8)] {
        let input = maskedFrames(count: count, size: size)
        let bytes = Double(count * size)
        for (mode, config) in [("streaming", streaming), ("whole messages", whole)] {
            var ws = try WSProtocol(role: .server, configuration: config, now: .zero)
            let units = size == 16 ? Double(count) : bytes
            let ours = input.withUnsafeBytes { raw in
                timer.rate(units: units) { precondition(decodeAll(&ws, raw, chunk: 64 << 10) == count) }
            }
            let naive = input.withUnsafeBytes { raw in
                timer.rate(units: units) { precondition(naiveDecodeAll(raw, chunk: 64 << 10) == count) }
            }
            row("binary \(size == 16 ? "16 B" : "64 KiB") frames, \(mode)", ours, size == 16 ? "M/s" : "GB/s",
                baseline: ("naive decoder", naive))
            var lending = try WSProtocol(role: .server, configuration: config, now: .zero)
            let lent = input.withUnsafeBytes { raw in
                timer.rate(units: units) { precondition(decodeAllLending(&lending, raw, chunk: 64 << 10) == count) }
            }
            row("  … lent (nextEvent(lendingData:))", lent, size == 16 ? "M/s" : "GB/s", baseline: ("naive decoder", naive))
        }
        if size > 16 {
            // The floor: copying the same reads into a reused buffer, as receive must.
            var sink = [UInt8]()
            sink.reserveCapacity(64 << 10)
            let copy = input.withUnsafeBytes { raw in
                timer.rate(units: bytes) {
                    var offset = 0
                    while offset < raw.count {
                        let end = min(raw.count, offset + (64 << 10))
                        sink.removeAll(keepingCapacity: true)
                        sink.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                        offset = end
                    }
                    blackHole(sink.count)
                }
            }
            row("  floor: memcpy of the same 64 KiB reads", copy, "GB/s")
        }
    }

    // Text in streaming mode: the UTF-8 validator runs on every payload byte.
    let text = mixedText(bytes: 16 << 10)
    let input = maskedFrames(count: 256, size: text.count, opcode: .text, payload: text)
    var ws = try WSProtocol(role: .server, configuration: streaming, now: .zero)
    let ours = input.withUnsafeBytes { raw in
        timer.rate(units: Double(256 * text.count)) { precondition(decodeAll(&ws, raw, chunk: 64 << 10) == 256) }
    }
    row("text 16 KiB frames (mixed UTF-8), streaming", ours, "GB/s")
}

/// Decodes exactly `frames` frames of `size` bytes in streaming mode; run under dhat to count
/// allocations, or under callgrind to count instructions.
func allocRun(frames: Int, size: Int, lend: Bool) throws {
    var config = WSProtocol.Configuration()
    config.delivery = .streaming
    config.pingInterval = nil
    config.maxFrameSize = max(size, config.maxFrameSize)
    let batch = max(1, min(1000, (1 << 22) / max(size, 1)))
    let input = maskedFrames(count: batch, size: size)
    var ws = try WSProtocol(role: .server, configuration: config, now: .zero)
    var total = 0
    input.withUnsafeBytes { raw in
        for _ in 0..<(frames / batch) {
            total += lend ? decodeAllLending(&ws, raw, chunk: 64 << 10) : decodeAll(&ws, raw, chunk: 64 << 10)
        }
    }
    precondition(total == frames / batch * batch)
    print("decoded \(total) frames")
}
