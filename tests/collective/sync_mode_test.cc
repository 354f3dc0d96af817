// --sync parsing for the all-reduce path and the routing of parameters by ParamKind
// (hybrid: dense by all-reduce, sparse tables through the servers).
#include "collective/sync_mode.h"

#include <gtest/gtest.h>

namespace tessera::collective {
namespace {

ParamSpec Spec(const std::string& name, ParamKind kind) {
  ParamSpec p;
  p.name = name;
  p.kind = kind;
  p.shape = {4};
  return p;
}

TEST(SyncMode, ModesAndTheServersPolicy) {
  EXPECT_EQ(GradSyncModeOf("allreduce"), GradSyncMode::kAllReduce);
  EXPECT_EQ(GradSyncModeOf("hybrid"), GradSyncMode::kHybrid);
  for (const char* s : {"bsp", "asp", "ssp:3", "allreduce ", "Hybrid"}) {
    EXPECT_EQ(GradSyncModeOf(s), GradSyncMode::kServers) << s;
    EXPECT_EQ(ServerSyncText(s), s);
  }
  EXPECT_EQ(ServerSyncText("allreduce"), "bsp");
  EXPECT_EQ(ServerSyncText("hybrid"), "bsp");
  EXPECT_TRUE(IsCollectiveSync("hybrid"));
  EXPECT_FALSE(IsCollectiveSync("ssp:1"));
}

TEST(RouteParams, HybridSendsDenseByAllReduceAndTablesThroughTheServers) {
  const std::vector<ParamSpec> specs = {Spec("wide.table", ParamKind::kSparse), Spec("deep.fc1.weight", ParamKind::kDense),
                                        Spec("deep.emb", ParamKind::kSparse), Spec("deep.fc1.bias", ParamKind::kDense)};
  auto h = RouteParams(specs, GradSyncMode::kHybrid);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(*h, (std::vector<Route>{Route::kServers, Route::kAllReduce, Route::kServers, Route::kAllReduce}));
  auto s = RouteParams(specs, GradSyncMode::kServers);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, std::vector<Route>(4, Route::kServers));
}

TEST(RouteParams, AllReduceRefusesSparseTablesNamingTheTable) {
  auto r = RouteParams({Spec("fc.weight", ParamKind::kDense), Spec("user.emb", ParamKind::kSparse)}, GradSyncMode::kAllReduce);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("'user.emb' is a sparse table"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("--sync=hybrid"), std::string::npos);
  auto d = RouteParams({Spec("fc.weight", ParamKind::kDense)}, GradSyncMode::kAllReduce);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, std::vector<Route>{Route::kAllReduce});
}

}  // namespace
}  // namespace tessera::collective
