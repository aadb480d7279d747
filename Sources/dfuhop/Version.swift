import HIDAPIBackend
import LibUSBBackend

/// What `dfuhop --version` prints: the release, the commit it was built from (`BuildInfo`, written at
/// build time by Plugins/BuildInfo), and the USB libraries it runs with, as they report themselves.
enum Version {
    static let release = "0.1.0"

    static var text: String {
        """
        dfuhop \(release) (commit \(BuildInfo.commit))
        libusb \(LibUSBContext.libraryVersion), hidapi \(HIDAPIBackend.libraryVersion)
        """
    }
}
