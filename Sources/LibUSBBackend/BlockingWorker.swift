import Dispatch

/// Runs blocking libusb calls on one serial dispatch queue, never on Swift's cooperative thread pool:
/// a control transfer may block for its whole timeout (seconds during a mass erase), and the pool has
/// only as many threads as cores. One worker per device keeps each device's calls in order.
///
/// The worker is also a `TaskExecutor`: a task that prefers it (the DfuSe client's transfer loops, see
/// `DFUTransport.preferredExecutor`) runs on the worker's queue, and its calls then run in place instead
/// of hopping to the queue and back — two thread switches saved on every control transfer.
final class BlockingWorker: TaskExecutor, Sendable {
    private let queue: DispatchQueue
    private let onQueue = DispatchSpecificKey<Bool>()

    private static let labelKey = DispatchSpecificKey<String>()

    init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
        queue.setSpecific(key: Self.labelKey, value: label)
        queue.setSpecific(key: onQueue, value: true)
    }

    /// The label of the worker running the caller, nil off every worker (e.g. on the cooperative pool).
    static var currentLabel: String? { DispatchQueue.getSpecific(key: labelKey) }

    /// Runs `body` on the worker's queue and suspends the caller until it returns; in place when the
    /// caller already runs there. The call is not interruptible: a cancelled task waits for the libusb
    /// timeout it asked for.
    func run<T: Sendable, E: Error>(_ body: @escaping @Sendable () throws(E) -> T) async throws(E) -> T {
        if DispatchQueue.getSpecific(key: onQueue) == true { return try body() }
        let result: Result<T, E> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: Result { () throws(E) -> T in try body() })
            }
        }
        return try result.get()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
