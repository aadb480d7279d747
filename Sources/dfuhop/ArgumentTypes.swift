import ArgumentParser

/// A time given in seconds on the command line: a positive, finite number no larger than a day, so no
/// value (`inf`, `1e16`, `nan`) can overflow a `Duration` or wait for ever.
struct Seconds: ExpressibleByArgument, Sendable, CustomStringConvertible {
    static let limit = 86_400.0
    let value: Double

    init?(argument: String) {
        guard let value = Double(argument), value.isFinite, value > 0, value <= Self.limit else { return nil }
        self.value = value
    }

    init(_ value: Double) { self.value = value }

    var duration: Duration { .milliseconds(Int64((value * 1000).rounded())) }
    var description: String { String(value) }
    static var defaultCompletionKind: CompletionKind { .default }
}
