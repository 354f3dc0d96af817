// Mutex and MutexLock: std::mutex with Clang thread-safety annotations, so GUARDED_BY /
// EXCLUDES on wire's classes are checked under -Wthread-safety (std::mutex in libstdc++
// is not annotated, and the analysis ignores it). Candidate for common/ (the lead's call).
//
// Thread safety: it is a mutex.
#pragma once

#include <mutex>

#include "common/thread_annotations.h"

#define TESSERA_CAPABILITY(x) TESSERA_TSA(capability(x))
#define TESSERA_SCOPED_CAPABILITY TESSERA_TSA(scoped_lockable)
#define TESSERA_ACQUIRE(...) TESSERA_TSA(acquire_capability(__VA_ARGS__))
#define TESSERA_RELEASE(...) TESSERA_TSA(release_capability(__VA_ARGS__))

namespace tessera::wire {

class TESSERA_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() TESSERA_ACQUIRE() { mu_.lock(); }
  void Unlock() TESSERA_RELEASE() { mu_.unlock(); }
  bool TryLock() TESSERA_TSA(try_acquire_capability(true)) { return mu_.try_lock(); }

 private:
  std::mutex mu_;
};

class TESSERA_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) TESSERA_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() TESSERA_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace tessera::wire
