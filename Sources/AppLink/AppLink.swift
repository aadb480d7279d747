@_exported import USBTransport
