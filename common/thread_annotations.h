// Clang thread-safety annotations (no-ops elsewhere), as in leveldb port/.
#pragma once

#if defined(__clang__)
#define TESSERA_TSA(x) __attribute__((x))
#else
#define TESSERA_TSA(x)
#endif

#define GUARDED_BY(x) TESSERA_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) TESSERA_TSA(pt_guarded_by(x))
#define REQUIRES(...) TESSERA_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) TESSERA_TSA(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS TESSERA_TSA(no_thread_safety_analysis)
