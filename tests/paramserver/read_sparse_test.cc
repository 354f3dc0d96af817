// ShardStore::ReadSparse at the row widths it has a compiled-in copy for (8, 16, 32, 64)
// and some it has not: each output row is its key's stored row (or, absent, the key's
// initial values), duplicates and absent keys mixed in, nothing written past the rows.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "kernels/param_init.h"
#include "paramserver/shard_store.h"
#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

TEST(ReadSparse, EveryRowIsItsKeysRowAtEveryWidth) {
  std::mt19937_64 rng(11);
  for (const uint64_t w : {uint64_t{1}, uint64_t{7}, uint64_t{8}, uint64_t{16}, uint64_t{32}, uint64_t{33}, uint64_t{64}}) {
    Cluster c(1, 1, {SparseSpec("emb", static_cast<int64_t>(w), Adagrad())}, {SyncMode::kAsp, 0});
    ShardStore& store = c.core(0).mutable_store();
    std::vector<Key> resident;
    for (Key k = 0; k < 300; k += 2) resident.push_back(k);  // the odd keys stay absent
    std::vector<float> g(resident.size() * w);
    for (size_t i = 0; i < g.size(); ++i) g[i] = Grad(0, 1, i);
    ASSERT_OK(store.ApplySparseRows(0, resident, g, 1));
    std::vector<Key> keys(1000);
    for (auto& k : keys) k = rng() % 300;
    std::vector<float> out(keys.size() * w + 5, -9.0f);
    ASSERT_OK(store.ReadSparse(0, keys, std::span<float>(out.data(), keys.size() * w)));
    const RowTable& t = *store.table(0);
    const ParamSpec spec = SparseSpec("emb", static_cast<int64_t>(w), Adagrad());
    std::vector<float> want(w);
    for (size_t i = 0; i < keys.size(); ++i) {
      const uint32_t slot = t.Find(keys[i]);
      ASSERT_EQ(slot == RowTable::kNoSlot, keys[i] % 2 == 1) << keys[i];
      if (slot != RowTable::kNoSlot) {
        std::memcpy(want.data(), t.data(slot), w * sizeof(float));
      } else {
        ASSERT_OK(InitializeSparseRow(spec, keys[i], TensorView{want.data(), DType::kF32, {static_cast<int64_t>(w)}, Device::kCPU}));
      }
      ASSERT_EQ(std::memcmp(&out[i * w], want.data(), w * sizeof(float)), 0) << "width " << w << " row " << i;
    }
    for (size_t i = keys.size() * w; i < out.size(); ++i) ASSERT_EQ(out[i], -9.0f) << "width " << w;
  }
}

}  // namespace
}  // namespace tessera::paramserver::testing
