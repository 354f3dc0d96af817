// One input of the manifest fuzzer (see manifest_fuzzer.cc): shared with the
// regression test that replays what it found (tests/checkpoint/manifest_hostile_test.cc).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "checkpoint/crc32c.h"
#include "checkpoint/manifest.h"

namespace tessera::fuzz {

inline void RunManifestText(const std::string& text) {
  using namespace tessera::checkpoint;
  auto m = ParseManifest(text, "fuzz/MANIFEST");
  if (!m.ok()) {
    if (m.status().message().find("fuzz/MANIFEST") == std::string::npos) abort();
    return;
  }
  const std::string once = SerializeManifest(*m);
  auto again = ParseManifest(once, "reserialized");
  if (!again.ok()) abort();
  if (SerializeManifest(*again) != once) abort();
}

// The input as given, then its body with a valid checksum line.
inline int RunManifestInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  RunManifestText(text);
  const size_t cut = text.rfind("checksum ");
  std::string body = text.substr(0, cut == std::string::npos ? text.size() : cut);
  if (!body.empty() && body.back() != '\n') body += '\n';
  char line[32];
  std::snprintf(line, sizeof(line), "checksum %08x\n", checkpoint::Crc32c(body.data(), body.size()));
  RunManifestText(body + line);
  return 0;
}

}  // namespace tessera::fuzz
