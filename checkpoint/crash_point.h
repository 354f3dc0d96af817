// Test-only crash points: TESSERA_CRASH_AT=<name>[:<n>] makes the process raise(SIGKILL)
// the n-th time (default: the first) it passes CrashPoint(<name>). Used by the crash
// tests to kill a real process at an exact place of the checkpoint protocol; the names
// are listed in docs/checkpoints.md ("Crash points"). Without the variable a crash point
// costs a check of a function-local static and an empty string.
//
// TESSERA_FAIL_AT=<name>[:<n>] makes FailPoint(<name>) return true the n-th time it is
// passed (and only then): the caller fails that step as if the system call had returned
// EIO. It exists for the one failure libfiu cannot aim at: fiu-run fails every fsync of a
// process, while the directory fsync after the MANIFEST's rename must fail alone (the
// MANIFEST's own fsync succeeding). Names are listed in docs/checkpoints.md too.
//
// TESSERA_DELAY_AT=<name>:<n>:<ms> makes DelayPoint(<name>) sleep <ms> milliseconds the
// n-th time it is passed: a slow disk at one exact place (a checkpoint still being
// written when training ends), which no fault tool can aim at one write.
//
// Thread safety: all three may be called from any thread (each variable is read once,
// at the first call; the pass counts are atomic).
#pragma once

namespace tessera::checkpoint {

void CrashPoint(const char* name);
[[nodiscard]] bool FailPoint(const char* name);
void DelayPoint(const char* name);

}  // namespace tessera::checkpoint
