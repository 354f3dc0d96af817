// Row copies with the row width a compile-time constant. A sparse row is a few cache
// lines of floats; copied through memcpy with a run-time length every row was a call
// (4096 per 4096-key pull or push), most of the copying loops that used it
// (worker/key_groups.cc, paramserver/shard_store.cc's ReadSparse).
//
// Thread safety: pure.
#pragma once

#include <cstdint>

namespace tessera {

// f.template operator()<W>() with W == width for the widths compiled in (8, 16, 32, 64
// floats), W == 0 for any other: then the callee uses the run-time width.
template <class F>
void WithRowWidth(uint64_t width, F&& f) {
  switch (width) {
    case 8: return f.template operator()<8>();
    case 16: return f.template operator()<16>();
    case 32: return f.template operator()<32>();
    case 64: return f.template operator()<64>();
    default: return f.template operator()<0>();
  }
}

}  // namespace tessera
