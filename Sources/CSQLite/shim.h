// The system SQLite 3 for Swift (StationHistory); the include path comes from pkg-config (sqlite3).
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import: SQLite copies a bound value before the call returns.
static inline sqlite3_destructor_type csqlite_transient(void) { return SQLITE_TRANSIENT; }
