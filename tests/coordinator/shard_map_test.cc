#include "common/cluster/shard_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/hash.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

ParamSpec Dense(std::string name, Shape shape, DType dtype = DType::kF32) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::kDense;
  p.dtype = dtype;
  p.shape = std::move(shape);
  return p;
}

ParamSpec Sparse(std::string name, int64_t width) {
  ParamSpec p;
  p.name = std::move(name);
  p.kind = ParamKind::kSparse;
  p.shape = {width};
  return p;
}

std::vector<ServerEndpoint> Servers(int n) {
  std::vector<ServerEndpoint> s;
  for (int i = 0; i < n; ++i) s.push_back({i + 1, "tcp://127.0.0.1:" + std::to_string(5000 + i)});
  return s;
}

// Five tensors of odd sizes (one f16, one f64), plus a sparse table in the middle.
std::vector<ParamSpec> OddParams() {
  return {Dense("a", {37, 11}), Dense("b", {1001}),
          Sparse("emb", 8),     Dense("c", {3, 5, 7}, DType::kF16),
          Dense("d", {1}),      Dense("e", {129, 3}, DType::kF64)};
}

Result<ShardMap> BuildMap(int servers, uint64_t chunk_bytes, std::vector<ParamSpec> params) {
  ShardMapOptions o;
  o.version = 7;
  o.chunk_bytes = chunk_bytes;
  o.num_workers = 3;
  return ShardMap::Build(o, Servers(servers), std::move(params));
}

TEST(ShardMap, ChunksHaveTheConfiguredBytesAndTheLastIsShorter) {
  auto map = BuildMap(2, 64, OddParams());
  ASSERT_OK(map.status());
  const DenseLayout* a = map->dense_layout(0);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->num_elements, 407u);
  EXPECT_EQ(a->chunk_elements, 16u);  // 64 bytes of f32
  EXPECT_EQ(a->num_chunks(), 26u);
  EXPECT_EQ(a->ChunkRange(25), (KeyRange{400, 407}));
  EXPECT_EQ(map->dense_layout(3)->chunk_elements, 32u);  // f16
  EXPECT_EQ(map->dense_layout(5)->chunk_elements, 8u);   // f64
  EXPECT_EQ(map->dense_layout(2), nullptr) << "sparse";
  ASSERT_EQ(map->data().sparse.size(), 1u);
  EXPECT_EQ(map->data().sparse[0], (SparseLayout{2, 8}));
}

TEST(ShardMap, BytesAreBalancedWithinOneChunk) {
  for (uint64_t chunk_bytes : {16u, 64u, 100u, 1024u, 1u << 20}) {
    for (int servers = 1; servers <= 4; ++servers) {
      auto map = BuildMap(servers, chunk_bytes, OddParams());
      ASSERT_OK(map.status());
      uint64_t total = 0, lo = UINT64_MAX, hi = 0;
      for (int s = 0; s < servers; ++s) {
        const uint64_t b = map->ServerBytes(static_cast<uint32_t>(s));
        total += b;
        lo = std::min(lo, b);
        hi = std::max(hi, b);
      }
      EXPECT_EQ(total, 407u * 4 + 1001u * 4 + 105u * 2 + 4u + 387u * 8);
      EXPECT_LE(hi - lo, chunk_bytes) << servers << " servers, chunk_bytes " << chunk_bytes;
    }
  }
}

TEST(ShardMap, PlacementIsDeterministic) {
  auto m1 = BuildMap(3, 100, OddParams());
  auto m2 = BuildMap(3, 100, OddParams());
  ASSERT_OK(m1.status());
  ASSERT_OK(m2.status());
  EXPECT_EQ(m1->data().dense, m2->data().dense);
  // Equal chunks go round-robin from server 0: the least loaded, lowest index first.
  const DenseLayout* a = m1->dense_layout(0);
  ASSERT_EQ(a->num_chunks(), 17u);  // 407 f32 in chunks of 25
  for (uint64_t c = 0; c < 16; ++c) EXPECT_EQ(a->chunk_server[c], c % 3) << "chunk " << c;
}

TEST(ShardMap, SplitDenseCoversRangeExactlyOnceInOrder) {
  auto map = BuildMap(3, 64, OddParams());
  ASSERT_OK(map.status());
  const DenseLayout* l = map->dense_layout(1);
  const uint64_t n = l->num_elements;
  const std::pair<uint64_t, uint64_t> ranges[] = {{0, n},   {0, 1},   {n - 1, n}, {15, 17},
                                                  {16, 32}, {5, 300}, {17, 18}};
  for (auto [begin, end] : ranges) {
    auto pieces = map->SplitDense(1, begin, end);
    ASSERT_OK(pieces.status());
    uint64_t at = begin;
    for (size_t i = 0; i < pieces->size(); ++i) {
      const DensePiece& p = (*pieces)[i];
      EXPECT_EQ(p.begin, at) << "piece " << i << " of [" << begin << ", " << end << ")";
      ASSERT_LT(p.begin, p.end);
      if (i > 0) {
        EXPECT_NE(p.server, (*pieces)[i - 1].server) << "adjacent pieces are merged";
      }
      // Every element of the piece lives on its server.
      for (uint64_t e = p.begin; e < p.end; ++e) {
        ASSERT_EQ(l->chunk_server[e / l->chunk_elements], p.server) << "element " << e;
      }
      EXPECT_OK(map->CheckDenseOwner(p.server, 1, p.begin, p.end));
      at = p.end;
    }
    EXPECT_EQ(at, end);
  }
}

TEST(ShardMap, SplitDenseMergesAdjacentChunksOfOneServer) {
  auto map = BuildMap(1, 64, OddParams());
  ASSERT_OK(map.status());
  auto pieces = map->SplitDense(0, 0, 407);
  ASSERT_OK(pieces.status());
  ASSERT_EQ(pieces->size(), 1u);
  EXPECT_EQ((*pieces)[0], (DensePiece{0, 0, 407}));
}

TEST(ShardMap, SplitDenseRefusesBadRequests) {
  auto map = BuildMap(2, 64, OddParams());
  ASSERT_OK(map.status());
  EXPECT_EQ(map->SplitDense(99, 0, 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(map->SplitDense(2, 0, 1).status().code(), StatusCode::kInvalidArgument) << "sparse";
  EXPECT_EQ(map->SplitDense(0, 5, 5).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(map->SplitDense(0, 0, 408).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(map->SplitDense(0, 9, 3).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardMap, OwnershipRefusalNamesRangeAndOwner) {
  auto map = BuildMap(2, 64, OddParams());
  ASSERT_OK(map.status());
  const DenseLayout* l = map->dense_layout(0);
  const uint32_t owner = l->chunk_server[1];
  const uint32_t other = 1 - owner;
  EXPECT_TRUE(map->OwnsDense(owner, 0, 16, 32));
  Status st = map->CheckDenseOwner(other, 0, 16, 20);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("[16, 20)"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("server " + std::to_string(owner)), std::string::npos)
      << st.ToString();
  // A range crossing into a chunk of another server is refused even though it starts
  // in an owned chunk.
  EXPECT_FALSE(map->OwnsDense(owner, 0, 16, 40));
}

TEST(ShardMap, SparseOwnerIsTheDocumentedHash) {
  auto map = BuildMap(3, 64, OddParams());
  ASSERT_OK(map.status());
  for (Key k : {Key{0}, Key{1}, Key{42}, Key{1} << 40, ~Key{0}}) {
    const uint32_t expected = static_cast<uint32_t>(Mix64(k ^ Mix64(2)) % 3);
    EXPECT_EQ(ShardMap::SparseServerOf(2, k, 3), expected) << "key " << k;
    EXPECT_TRUE(map->OwnsKey(expected, 2, k));
    Status st = map->CheckKeyOwner((expected + 1) % 3, 2, k);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("server " + std::to_string(expected)), std::string::npos);
  }
  // Stable across map versions and independent of the other params.
  ShardMapOptions o;
  o.version = 99;
  auto other = ShardMap::Build(o, Servers(3), {Dense("x", {5}), Dense("y", {7}), Sparse("emb", 4)});
  ASSERT_OK(other.status());
  for (Key k = 0; k < 1000; ++k) {
    ASSERT_EQ(other->OwnsKey(0, 2, k), map->OwnsKey(0, 2, k)) << "key " << k;
  }
  EXPECT_EQ(map->CheckKeyOwner(0, 0, 1).code(), StatusCode::kInvalidArgument) << "dense";
  EXPECT_EQ(map->CheckKeyOwner(0, 77, 1).code(), StatusCode::kNotFound);
}

TEST(ShardMap, SparseKeysLiveInVirtualPartitionsThatMoveWhole) {
  // Placement is partition % S; for S dividing 840 that is the old hash % S, so maps and
  // checkpoints of those server counts place every key where they did.
  for (Key k = 0; k < 5000; ++k) {
    const Key key = Mix64(k);
    const uint32_t part = ShardMap::SparsePartitionOf(2, key);
    ASSERT_LT(part, kSparsePartitions);
    ASSERT_EQ(part, Mix64(key ^ Mix64(2)) % kSparsePartitions);
    for (uint32_t s = 1; s <= 16; ++s) {
      ASSERT_EQ(ShardMap::SparseServerOf(2, key, s), part % s) << "key " << key << ", " << s << " servers";
      if (kSparsePartitions % s == 0) {
        ASSERT_EQ(ShardMap::SparseServerOf(2, key, s), Mix64(key ^ Mix64(2)) % s) << "key " << key << ", " << s;
      }
    }
  }
  // Every server of a 9-server map holds 93 or 94 of the 840 partitions.
  std::vector<int> parts(9, 0);
  for (uint32_t p = 0; p < kSparsePartitions; ++p) ++parts[p % 9];
  for (const int n : parts) EXPECT_TRUE(n == 93 || n == 94) << n;
}

TEST(ShardMap, SparseKeysAreRoughlyBalanced) {
  auto map = BuildMap(4, 64, OddParams());
  ASSERT_OK(map.status());
  std::vector<Key> keys;
  for (Key k = 0; k < 40000; ++k)
    keys.push_back(k);  // sequential ids, the worst case for a weak hash
  auto split = map->SplitSparse(2, keys);
  ASSERT_OK(split.status());
  ASSERT_EQ(split->keys.size(), 4u);
  for (int s = 0; s < 4; ++s) EXPECT_NEAR(split->keys[s].size(), 10000.0, 400.0) << "server " << s;
}

TEST(ShardMap, SplitSparseKeepsPositionsForScatteringBack) {
  auto map = BuildMap(3, 64, OddParams());
  ASSERT_OK(map.status());
  const std::vector<Key> keys = {9, 3, 77, 3, 1000000007, 0, 5};
  auto split = map->SplitSparse(2, keys);
  ASSERT_OK(split.status());
  std::vector<int> seen(keys.size(), 0);
  for (uint32_t s = 0; s < 3; ++s) {
    ASSERT_EQ(split->keys[s].size(), split->positions[s].size());
    for (size_t j = 0; j < split->keys[s].size(); ++j) {
      const uint64_t pos = split->positions[s][j];
      ASSERT_LT(pos, keys.size());
      EXPECT_EQ(split->keys[s][j], keys[pos]);
      EXPECT_TRUE(map->OwnsKey(s, 2, keys[pos]));
      if (j > 0) {
        EXPECT_LT(split->positions[s][j - 1], pos) << "input order kept";
      }
      seen[pos]++;
    }
  }
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(seen[i], 1) << "position " << i;
  EXPECT_EQ(map->SplitSparse(0, keys).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardMap, RejectsInvalidParams) {
  auto expect_invalid = [](std::vector<ParamSpec> params, const char* what) {
    auto map = BuildMap(2, 64, std::move(params));
    ASSERT_FALSE(map.ok()) << what;
    EXPECT_EQ(map.status().code(), StatusCode::kInvalidArgument) << what;
  };
  expect_invalid({Dense("w", {3}), Dense("w", {4})}, "duplicate names");
  expect_invalid({Dense("w", {3, 0})}, "zero-size");
  expect_invalid({Dense("w", {-2})}, "negative dim");
  expect_invalid({Dense("", {2})}, "empty name");
  expect_invalid({Dense("w", {2}, static_cast<DType>(42))}, "unknown dtype");
  expect_invalid({Dense("w", {2}, DType::kI32)}, "integer dtype");
  expect_invalid({Dense("w", {1 << 20, 1 << 20, 1 << 20})}, "too big");
  expect_invalid({Sparse("t", 0)}, "zero row width");
  ParamSpec two_d = Sparse("t", 4);
  two_d.shape = {4, 4};
  expect_invalid({two_d}, "sparse with a 2-D shape");
  ParamSpec bad_opt = Dense("w", {2});
  bad_opt.optimizer.kind = static_cast<OptimizerKind>(9);
  expect_invalid({bad_opt}, "unknown optimizer");

  auto dup = BuildMap(2, 64, {Dense("w", {3}), Dense("w", {4})});
  EXPECT_NE(dup.status().message().find("'w'"), std::string::npos) << dup.status().ToString();
}

TEST(ShardMap, RejectsBadOptions) {
  ShardMapOptions o;
  EXPECT_EQ(ShardMap::Build(o, {}, {Dense("w", {2})}).status().code(),
            StatusCode::kInvalidArgument);
  o.num_workers = 0;
  EXPECT_EQ(ShardMap::Build(o, Servers(1), {}).status().code(), StatusCode::kInvalidArgument);
  o.num_workers = 1;
  o.chunk_bytes = 0;
  EXPECT_EQ(ShardMap::Build(o, Servers(1), {}).status().code(), StatusCode::kInvalidArgument);
  o.chunk_bytes = 64;
  o.sync = {SyncMode::kBsp, 3};
  EXPECT_EQ(ShardMap::Build(o, Servers(1), {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ShardMap, FromDataAcceptsWhatBuildMadeAndRejectsInconsistentLayouts) {
  auto map = BuildMap(3, 64, OddParams());
  ASSERT_OK(map.status());
  auto copy = ShardMap::FromData(map->data());
  ASSERT_OK(copy.status());
  for (uint32_t s = 0; s < 3; ++s) EXPECT_EQ(copy->ServerBytes(s), map->ServerBytes(s));

  auto broken = [&](auto mutate, const char* what) {
    ShardMapData d = map->data();
    mutate(d);
    auto m = ShardMap::FromData(std::move(d));
    ASSERT_FALSE(m.ok()) << what;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << what;
  };
  broken([](ShardMapData& d) { d.dense[0].chunk_server[3] = 3; }, "server index out of range");
  broken([](ShardMapData& d) { d.dense[0].chunk_server.pop_back(); }, "missing chunk");
  broken([](ShardMapData& d) { d.dense[0].chunk_elements = 0; }, "zero chunk");
  broken([](ShardMapData& d) { d.dense[0].num_elements += 1; }, "wrong size");
  broken([](ShardMapData& d) { d.dense.pop_back(); }, "param without layout");
  broken([](ShardMapData& d) { d.dense.push_back(d.dense[0]); }, "two layouts");
  broken([](ShardMapData& d) { d.sparse[0].row_width = 3; }, "row width");
  broken([](ShardMapData& d) { d.sparse[0].param_id = 0; }, "sparse layout for dense param");
  broken([](ShardMapData& d) { d.dense[0].param_id = 2; }, "dense layout for sparse param");
  broken([](ShardMapData& d) { d.dense[0].param_id = 50; }, "unknown param");
}

}  // namespace
}  // namespace tessera
