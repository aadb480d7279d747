import Dispatch

/// Runs blocking libusb calls on one serial dispatch queue, never on Swift's cooperative thread pool:
/// a control transfer may block for its whole timeout (seconds during a mass erase), and the pool has
/// only as many threads as cores. One worker per device keeps each device's calls in order.
final class BlockingWorker: Sendable {
    private let queue: DispatchQueue

    private static let labelKey = DispatchSpecificKey<String>()

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
        queue.setSpecific(key: Self.labelKey, value: label)
    }

    /// The label of the worker running the caller, nil off every worker (e.g. on the cooperative pool).
    static var currentLabel: String? { DispatchQueue.getSpecific(key: labelKey) }

    /// Runs `body` on the worker's queue and suspends the caller until it returns.
    /// The call is not interruptible: a cancelled task waits for the libusb timeout it asked for.
    func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
        }
        return try result.get()
    }
}
