// Every refusal of ParamServerCore: the right code, a message naming the problem, no
// change to the store or the pending pushes, and the next good request is served.
#include <gtest/gtest.h>

#include <random>

#include "tests/paramserver/test_cluster.h"

namespace tessera::paramserver::testing {
namespace {

constexpr uint32_t kW = 0, kB = 1, kEmb = 2;

class Refusals : public ::testing::Test {
 protected:
  // Two servers, two workers, bsp. With 32-byte chunks w (35 f32) has chunks of 8, 8, 8,
  // 8, 3 elements placed 0, 1, 0, 1, 0, and b (3 f32) goes to server 1.
  Refusals() : c_(2, 2, {DenseSpec("w", {5, 7}), DenseSpec("b", {3}), SparseSpec("emb", 4)}) {}

  void SetUp() override {
    const DenseLayout& w = *c_.map().dense_layout(kW);
    ASSERT_EQ(w.chunk_server, (std::vector<uint32_t>{0, 1, 0, 1, 0}));
    // Something pending, so "unchanged" also covers the aggregator.
    ASSERT_OK(core().Push(Dense(0, 8), Grads(8)));
  }

  ParamServerCore& core() { return c_.core(0); }

  ParamRequest Dense(uint64_t begin, uint64_t end, int64_t step = 0, int worker = 0) {
    ParamRequest r = c_.Request(worker, kW, step);
    r.begin = begin;
    r.end = end;
    return r;
  }
  ParamRequest Sparse(const std::vector<Key>& keys, int64_t step = 0, int worker = 0) {
    keys_ = keys;
    ParamRequest r = c_.Request(worker, kEmb, step);
    r.kind = ParamKind::kSparse;
    r.keys = keys_;
    return r;
  }
  static std::vector<float> Grads(size_t n) { return std::vector<float>(n, 0.25f); }

  // The `nth` smallest key of the table that server `s` owns.
  static Key KeyOwnedBy(uint32_t s, int nth = 0) {
    for (Key k = 0;; ++k) {
      if (ShardMap::SparseServerOf(kEmb, k, 2) == s && nth-- == 0) return k;
    }
  }

  // The refusal had `code`, mentions `needle`, and left everything as it was; then a good
  // pull is answered.
  void ExpectRefused(const Status& st, StatusCode code, const std::string& needle) {
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_NE(st.message().find(needle), std::string::npos)
        << "'" << needle << "' not in: " << st.ToString();
    EXPECT_EQ(core().Digest(), digest_);
    EXPECT_EQ(core().aggregator().PendingSteps(), 1u);
    std::vector<float> out(8);
    EXPECT_OK(core().Pull(Dense(16, 24, kNoStep), out));
  }

  Cluster c_;
  std::vector<Key> keys_;
  uint64_t digest_ = 0;
};

TEST_F(Refusals, StaleShardMapVersion) {
  digest_ = core().Digest();
  ParamRequest r = Dense(16, 24);
  r.shard_map_version = c_.map().version() - 1;
  ExpectRefused(core().Push(r, Grads(8)), StatusCode::kVersionMismatch, "version 2");
  std::vector<float> out(8);
  ExpectRefused(core().Pull(r, out), StatusCode::kVersionMismatch, "has version 3");
  ExpectRefused(core().PullReady(r).status(), StatusCode::kVersionMismatch, "version");
}

TEST_F(Refusals, UnknownParam) {
  digest_ = core().Digest();
  ParamRequest r = Dense(0, 8);
  r.param_id = 99;
  ExpectRefused(core().Push(r, Grads(8)), StatusCode::kNotFound, "99");
  std::vector<float> out(8);
  ExpectRefused(core().Pull(r, out), StatusCode::kNotFound, "99");
}

TEST_F(Refusals, KindMismatch) {
  digest_ = core().Digest();
  ParamRequest dense_for_table = Dense(0, 4);
  dense_for_table.param_id = kEmb;
  ExpectRefused(core().Push(dense_for_table, Grads(4)), StatusCode::kInvalidArgument, "sparse");
  ParamRequest sparse_for_dense = Sparse({KeyOwnedBy(0)});
  sparse_for_dense.param_id = kW;
  ExpectRefused(core().Push(sparse_for_dense, Grads(4)), StatusCode::kInvalidArgument, "dense");
}

TEST_F(Refusals, RangeOwnedByAnotherServerNamesRangeAndOwner) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(8, 16), Grads(8)), StatusCode::kInvalidArgument, "[8, 16)");
  std::vector<float> out(10);
  Status st = core().Pull(Dense(6, 16, kNoStep), out);
  ExpectRefused(st, StatusCode::kInvalidArgument, "live on server 1");
  ExpectRefused(st, StatusCode::kInvalidArgument, "[6, 16)");
  ParamRequest b = Dense(0, 3);
  b.param_id = kB;
  ExpectRefused(core().Push(b, Grads(3)), StatusCode::kInvalidArgument, "server 1");
}

TEST_F(Refusals, RangeEmptyOrPastTheEnd) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(32, 36), Grads(4)), StatusCode::kInvalidArgument, "[32, 36)");
  std::vector<float> none;
  ExpectRefused(core().Pull(Dense(4, 4, kNoStep), none), StatusCode::kInvalidArgument, "empty");
}

TEST_F(Refusals, KeyOwnedByAnotherServerNamesKeyAndOwner) {
  digest_ = core().Digest();
  const Key mine = KeyOwnedBy(0), theirs = KeyOwnedBy(1);
  ExpectRefused(
      core().Push(Sparse({mine, theirs}), Grads(8)), StatusCode::kInvalidArgument,
      "key " + std::to_string(theirs) + " is not owned by server 0; it lives on server 1");
  std::vector<float> out(8);
  ExpectRefused(core().Pull(Sparse({theirs, mine}, kNoStep), out), StatusCode::kInvalidArgument,
                "key #0");
}

TEST_F(Refusals, WrongValueLength) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(16, 24), Grads(7)), StatusCode::kInvalidArgument, "7 values");
  std::vector<float> out(9);
  ExpectRefused(core().Pull(Dense(16, 24, kNoStep), out), StatusCode::kInvalidArgument, "covers 8");
  ExpectRefused(core().Push(Sparse({KeyOwnedBy(0)}), Grads(3)), StatusCode::kInvalidArgument,
                "3 values");
}

TEST_F(Refusals, DensePushNotMadeOfWholeChunks) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(16, 20), Grads(4)), StatusCode::kInvalidArgument, "whole chunks");
  ExpectRefused(core().Push(Dense(33, 35), Grads(2)), StatusCode::kInvalidArgument, "whole chunks");
  // Pulls may read any owned sub-range; the short last chunk is a whole chunk.
  std::vector<float> out(2);
  EXPECT_OK(core().Pull(Dense(33, 35, kNoStep), out));
  EXPECT_OK(core().Push(Dense(32, 35), Grads(3)));
}

TEST_F(Refusals, DuplicateKeysInOnePush) {
  digest_ = core().Digest();
  const Key k = KeyOwnedBy(0);
  ExpectRefused(core().Push(Sparse({k, KeyOwnedBy(0, 1), k}), Grads(12)),
                StatusCode::kInvalidArgument,
                "key " + std::to_string(k) + " appears more than once");
  // Pulls may repeat keys.
  std::vector<float> out(8);
  EXPECT_OK(core().Pull(Sparse({k, k}, kNoStep), out));
  for (int j = 0; j < 4; ++j) EXPECT_EQ(out[j], out[4 + j]) << "col " << j;
}

TEST_F(Refusals, BadWorkerIndexOrStep) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(16, 24, 0, 2), Grads(8)), StatusCode::kInvalidArgument,
                "worker index 2");
  ExpectRefused(core().Push(Dense(16, 24, 0, -1), Grads(8)), StatusCode::kInvalidArgument,
                "worker index -1");
  ExpectRefused(core().Push(Dense(16, 24, kNoStep, 0), Grads(8)), StatusCode::kInvalidArgument,
                "step >= 0");
}

TEST_F(Refusals, DuplicatePushOfAPendingStep) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(0, 8), Grads(8)), StatusCode::kFailedPrecondition,
                "pushed step 0 again");
}

TEST_F(Refusals, PushForAStepAlreadyApplied) {
  ASSERT_OK(core().Push(Dense(0, 8, 0, 1), Grads(8)));  // completes step 0 of chunk 0
  ASSERT_EQ(core().store().chunk(kW, 0)->updates, 1);
  ASSERT_OK(core().Push(Dense(0, 8, 1, 0), Grads(8)));  // one pending again
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(0, 8, 0, 1), Grads(8)), StatusCode::kFailedPrecondition,
                "newest pushed step is 0");
}

TEST_F(Refusals, BspPushThatSkipsAStep) {
  digest_ = core().Digest();
  ExpectRefused(core().Push(Dense(0, 8, 2, 0), Grads(8)), StatusCode::kFailedPrecondition,
                "has not pushed step 1");
}

TEST_F(Refusals, BspPushBeyondThePendingWindow) {
  for (int64_t s = 1; s < 4; ++s) ASSERT_OK(core().Push(Dense(16, 24, s - 1, 0), Grads(8)));
  ASSERT_OK(core().Push(Dense(16, 24, 3, 0), Grads(8)));
  ASSERT_OK(core().Push(Dense(0, 8, 1, 0), Grads(8)));
  // chunk 2 now has steps 0..3 pending; chunk 0 has 0 and 1.
  ASSERT_EQ(core().aggregator().PendingSteps(), 6u);
  digest_ = core().Digest();
  Status st = core().Push(Dense(16, 24, 4, 0), Grads(8));
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted) << st.ToString();
  EXPECT_EQ(core().aggregator().PendingSteps(), 6u);
  EXPECT_EQ(core().Digest(), digest_);
}

TEST_F(Refusals, PullBeforeItIsReady) {
  digest_ = core().Digest();
  std::vector<float> out(8);
  ExpectRefused(core().Pull(Dense(0, 8, 1), out), StatusCode::kFailedPrecondition, "not ready");
}

TEST(RefusalsAtomicity, MultiChunkPushRefusedForOneChunkTouchesNone) {
  Cluster c(1, 2, {DenseSpec("w", {5, 7})});
  ParamServerCore& core = c.core(0);
  ParamRequest one = c.Request(0, kW, 0);
  one.begin = 24;
  one.end = 32;
  ASSERT_OK(core.Push(one, std::vector<float>(8, 1.0f)));
  ParamRequest all = c.Request(0, kW, 0);
  all.begin = 0;
  all.end = 35;
  const uint64_t digest = core.Digest();
  Status st = core.Push(all, std::vector<float>(35, 1.0f));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("chunk 3"), std::string::npos) << st.ToString();
  EXPECT_EQ(core.aggregator().PendingSteps(), 1u) << "chunks 0-2 and 4 took nothing";
  EXPECT_EQ(core.Digest(), digest);
  // Worker 1's whole-tensor push completes chunk 3 only; worker 0 may still push the rest
  // of step 0 chunk by chunk.
  ParamRequest w1 = all;
  w1.worker = 1;
  ASSERT_OK(core.Push(w1, std::vector<float>(35, 1.0f)));
  EXPECT_EQ(core.store().chunk(kW, 3)->updates, 1);
  EXPECT_EQ(core.store().chunk(kW, 0)->updates, 0);
  ParamRequest rest = c.Request(0, kW, 0);
  rest.begin = 0;
  rest.end = 24;
  ASSERT_OK(core.Push(rest, std::vector<float>(24, 1.0f)));
  EXPECT_EQ(core.store().chunk(kW, 0)->updates, 1);
}

// The owner check (ParamServerCore's partition table, the table's hash taken once) agrees
// with ShardMap::SparseServerOf key for key, for server counts that divide the 840
// partitions and one that does not (11: partition % 11 differs from hash % 11).
TEST(SparseOwnerCheck, AcceptsExactlyTheKeysTheMapPlacesOnTheServer) {
  std::mt19937_64 rng(11);
  for (const int servers : {2, 3, 11}) {
    Cluster c(servers, 1, {SparseSpec("t0", 4), SparseSpec("t1", 4)});
    for (uint32_t table = 0; table < 2; ++table) {
      for (int i = 0; i < 400; ++i) {
        const Key k = i % 2 == 0 ? rng() : rng() % 100000;
        const uint32_t owner = ShardMap::SparseServerOf(table, k, static_cast<uint32_t>(servers));
        for (uint32_t s = 0; s < static_cast<uint32_t>(servers); ++s) {
          ParamRequest r = c.Request(0, table, kNoStep);
          r.kind = ParamKind::kSparse;
          r.keys = std::span<const Key>(&k, 1);
          std::vector<float> out(4);
          const Status st = c.core(s).Pull(r, out);
          ASSERT_EQ(st.ok(), s == owner) << "key " << k << " table " << table << " server " << s << " of "
                                         << servers << ": " << st.ToString();
        }
      }
    }
  }
}

}  // namespace
}  // namespace tessera::paramserver::testing
