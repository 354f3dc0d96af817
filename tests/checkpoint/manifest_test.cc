// ParseManifest's pieces (checkpoint/manifest.h): the checksum line and the server
// parts' check. Whole manifests, hostile ones included, are manifest_hostile_test.cc.
#include "checkpoint/manifest.h"

#include <gtest/gtest.h>

namespace tessera::checkpoint {
namespace {

Manifest TwoServers() {
  Manifest m;
  m.step = 7;
  m.num_servers = 2;
  m.num_workers = 1;
  m.servers.resize(2);
  m.servers[0].index = 0;
  m.servers[1].index = 1;
  return m;
}

TEST(ManifestBodySize, CoversEverythingBeforeTheChecksumLine) {
  const std::string text = SerializeManifest(TwoServers());
  auto size = ManifestBodySize(text, "m");
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(text.compare(*size, 9, "checksum "), 0);
}

TEST(ManifestBodySize, MissingChecksumLineIsATornWrite) {
  std::string text = SerializeManifest(TwoServers());
  text.resize(text.rfind("checksum "));
  auto size = ManifestBodySize(text, "dir/MANIFEST");
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), StatusCode::kCorruption);
  EXPECT_NE(size.status().message().find("dir/MANIFEST: no checksum line"), std::string::npos)
      << size.status().ToString();
}

TEST(ManifestBodySize, ChangedBodyIsAMismatch) {
  std::string text = SerializeManifest(TwoServers());
  text[text.find("step 7") + 5] = '8';
  auto size = ManifestBodySize(text, "m");
  ASSERT_FALSE(size.ok());
  EXPECT_NE(size.status().message().find("checksum mismatch"), std::string::npos) << size.status().ToString();
}

TEST(CheckServerParts, OnePartPerServerIsSound) {
  EXPECT_TRUE(CheckServerParts(TwoServers(), "m").ok());
}

TEST(CheckServerParts, TheReplicaPartDoesNotCount) {
  Manifest m = TwoServers();
  m.servers.push_back({});
  m.servers.back().index = kReplicaPart;
  EXPECT_TRUE(CheckServerParts(m, "m").ok());
}

TEST(CheckServerParts, MissingPartIsCorruption) {
  Manifest m = TwoServers();
  m.servers.pop_back();
  Status st = CheckServerParts(m, "m");
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_EQ(st.message(), "m: lists 1 server parts for 2 servers");
}

TEST(CheckServerParts, PartOutOfRangeIsCorruption) {
  Manifest m = TwoServers();
  m.servers[1].index = 2;
  Status st = CheckServerParts(m, "m");
  EXPECT_EQ(st.message(), "m: server part 2 out of range");
}

}  // namespace
}  // namespace tessera::checkpoint
