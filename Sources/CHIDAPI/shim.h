// hidapi for Swift: the hidraw backend on Linux (pkg-config hidapi-hidraw), IOHIDManager on macOS (hidapi).
// The include path and the library come from pkg-config (Package.swift picks the name per OS).
#include <hidapi.h>
