// hidapi with its hidraw backend (Linux) for Swift; the include path comes from pkg-config (hidapi-hidraw).
#include <hidapi.h>
