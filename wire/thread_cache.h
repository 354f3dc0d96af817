// ThreadCache: a few freed objects kept per thread for reuse before the allocator, for
// what a 4 KiB round trip allocates and frees once per message (wire/message_state.h's
// message states, wire/alloc.h's small-frame blocks).
//
// Thread safety: thread-local. Each thread takes from and gives back to its own slots
// only, so it needs no lock; an object given back on another thread than the one it came
// from simply joins that thread's slots.
#pragma once

#include <type_traits>

namespace tessera::wire {

// At most kMax freed T's per thread, reused before `new`. T::Reset(T&) readies one for
// reuse (it must leave no reference to what it held). A trivially constructible T (a raw
// block) is not zeroed when made. Objects left at thread exit are freed then; a Give after
// that (an object released by another thread_local's destructor) frees at once.
template <typename T, int kMax>
class ThreadCache {
 public:
  static T* Take() {
    (void)&guard_;  // odr-use: constructs the guard, so its destructor runs at thread exit
    if (slots_.n > 0) return slots_.items[--slots_.n];
    if constexpr (std::is_trivially_default_constructible_v<T>) {
      return new T;
    } else {
      return new T();
    }
  }
  static void Give(T* t) {
    (void)&guard_;
    T::Reset(*t);
    if (slots_.gone || slots_.n == kMax) {
      delete t;
      return;
    }
    slots_.items[slots_.n++] = t;
  }

 private:
  struct Slots {  // trivially destructible: still usable after the guard ran
    T* items[kMax];
    int n;
    bool gone;
  };
  struct Guard {
    ~Guard() {
      slots_.gone = true;
      while (slots_.n > 0) delete slots_.items[--slots_.n];
    }
  };
  static inline thread_local Slots slots_{};
  static inline thread_local Guard guard_;
};

}  // namespace tessera::wire
