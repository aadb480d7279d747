import ArgumentParser
import Foundation
import Logging

/// `-q` and `-v`/`-vv`, for every device command.
struct VerbosityOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Print only results and errors: no progress, notes or warnings.") var quiet = false
    @Flag(name: .shortAndLong, help: "-v: phases and decisions; -vv: also every USB control request and HID report (stderr).")
    var verbose: Int

    func validate() throws {
        if quiet, verbose > 0 { throw ValidationError("give -q or -v, not both") }
    }

    /// Sets up swift-log for this process (once) and returns the CLI's logger.
    func apply() -> Logger {
        Output.quiet = quiet
        let level: Logger.Level = verbose >= 2 ? .trace : verbose == 1 ? .info : .warning
        Verbosity.bootstrap(level: level)
        return Verbosity.logger
    }
}

enum Verbosity {
    private static let once: Void = {
        LoggingSystem.bootstrap { label in
            var handler = TerminalLogHandler(base: StreamLogHandler.standardError(label: label))
            handler.logLevel = .trace
            return handler
        }
    }()

    nonisolated(unsafe) static var logger = Logger(label: "dfuhop")

    /// Set once, from the command's `run()`, before any task starts: nothing reads it concurrently with the write.
    static func bootstrap(level: Logger.Level) {
        _ = once
        logger = Logger(label: "dfuhop")
        logger.logLevel = level
    }

    static var isVerbose: Bool { logger.logLevel <= .info }
}

/// swift-log's stderr handler with each message escaped as every line dfuhop prints is (`TerminalText`):
/// a message may hold what a device or a file said.
struct TerminalLogHandler: LogHandler {
    var base: StreamLogHandler

    var logLevel: Logger.Level {
        get { base.logLevel }
        set { base.logLevel = newValue }
    }

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        var event = event
        event.message = "\(TerminalText.escaped(event.message.description))"
        base.log(event: event)
    }
}
