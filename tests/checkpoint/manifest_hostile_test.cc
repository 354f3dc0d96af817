// The MANIFEST reader on hostile text: the cases manifest_fuzzer found, as unit tests,
// and every saved fuzzer input (tests/fuzz/regressions/manifest-*) replayed through the
// fuzzer's own checks (an accepted manifest must serialize and parse back to itself).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "checkpoint/crc32c.h"
#include "checkpoint/manifest.h"
#include "tests/fuzz/manifest_fuzz_run.h"
#include "tests/testutil/testutil.h"

namespace tessera::checkpoint {
namespace {

std::string WithChecksum(std::string body) {
  char line[32];
  std::snprintf(line, sizeof(line), "checksum %08x\n", Crc32c(body.data(), body.size()));
  return body + line;
}

Manifest Sample() {
  Manifest m;
  m.step = 5;
  m.num_servers = 1;
  m.num_workers = 1;
  m.sync = "bsp";
  m.grad_reduce = "mean";
  m.chunk_bytes = 1024;
  ServerPart s;
  s.dir = "server-0";
  s.files = {{"000001.sst", 10}};
  m.servers = {s};
  m.workers = {WorkerPart{0, 5, 0, 0}};
  return m;
}

TEST(ManifestHostile, DuplicateServerLineIsRefused) {
  std::string text = SerializeManifest(Sample());
  const std::string server_line = text.substr(text.find("server 0"), text.find('\n', text.find("server 0")) -
                                                                         text.find("server 0") + 1);
  std::string body = text.substr(0, text.rfind("checksum "));
  body.insert(body.find("server 0"), server_line);
  auto r = ParseManifest(WithChecksum(body), "dup/MANIFEST");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dup/MANIFEST"), std::string::npos) << r.status().ToString();
}

TEST(ManifestHostile, NumberWithAnEmbeddedNulIsRefused) {
  std::string body = SerializeManifest(Sample());
  body = body.substr(0, body.rfind("checksum "));
  const size_t p = body.find("step 5");
  body.replace(p, 6, std::string("step 5\0""9", 8));
  EXPECT_FALSE(ParseManifest(WithChecksum(body), "nul/MANIFEST").ok());
}

TEST(ManifestHostile, ControlCharactersInStringsRoundTrip) {
  Manifest m = Sample();
  m.sync = std::string("s\f\v\x01\x7f", 5) + std::string(1, '\0') + "x y%";
  m.flags = {{"k\tey", "v\nal"}};
  const std::string text = SerializeManifest(m);
  auto back = ParseManifest(text, "cc/MANIFEST");
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->sync, m.sync);
  EXPECT_EQ(back->flags, m.flags);
  EXPECT_EQ(SerializeManifest(*back), text);
}

TEST(ManifestHostile, FuzzerRegressionsReplay) {
  const auto dir = std::filesystem::path(testing::SourceDir()) / "tests/fuzz/regressions";
  int replayed = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("manifest-", 0) != 0) continue;
    std::ifstream f(e.path(), std::ios::binary);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(e.path().string());
    fuzz::RunManifestInput(bytes.data(), bytes.size());  // aborts on a violation
    ++replayed;
  }
  EXPECT_GE(replayed, 2);
}

}  // namespace
}  // namespace tessera::checkpoint
