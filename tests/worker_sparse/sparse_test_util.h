// Small files for the sparse-model tests: gzip and plain text written with zlib.
#pragma once

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace tessera::sparse_testing {

inline void WriteGz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

inline void WritePlain(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

// Cuts the file to `keep` bytes.
inline void Truncate(const std::string& path, uintmax_t keep) {
  std::filesystem::resize_file(path, keep);
}

}  // namespace tessera::sparse_testing
