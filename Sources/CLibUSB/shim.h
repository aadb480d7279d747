// libusb-1.0 for Swift; the include path comes from pkg-config (libusb-1.0).
#include <libusb.h>
