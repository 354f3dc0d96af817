// Test-only crash points: TESSERA_CRASH_AT=<name>[:<n>] makes the process raise(SIGKILL)
// the n-th time (default: the first) it passes CrashPoint(<name>). Used by the crash
// tests to kill a real process at an exact place of the checkpoint protocol; the names
// are listed in docs/checkpoints.md ("Crash points"). Without the variable a crash point
// costs one relaxed atomic load.
//
// Thread safety: CrashPoint may be called from any thread.
#pragma once

namespace tessera::checkpoint {

void CrashPoint(const char* name);

}  // namespace tessera::checkpoint
