// Helpers for data tests: build IDX byte strings and write them gzip-compressed.
#pragma once

#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace tessera::data::testing {

inline void AppendBigEndian32(std::string* s, uint32_t v) {
  s->push_back(static_cast<char>(v >> 24));
  s->push_back(static_cast<char>(v >> 16));
  s->push_back(static_cast<char>(v >> 8));
  s->push_back(static_cast<char>(v));
}

// IDX header for `magic` with the given dims, followed by `payload`.
inline std::string IdxBytes(uint32_t magic, const std::vector<uint32_t>& dims,
                            const std::string& payload) {
  std::string s;
  AppendBigEndian32(&s, magic);
  for (uint32_t d : dims) AppendBigEndian32(&s, d);
  return s + payload;
}

// Payload of n bytes: byte i = (i * mul + add) mod 256.
inline std::string PatternBytes(size_t n, int mul = 7, int add = 3) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * mul + add) & 0xff);
  return s;
}

// Writes `bytes` gzip-compressed with zlib. Returns false on failure.
inline bool WriteGz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const int n = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  const int rc = gzclose(f);
  return (bytes.empty() || n == static_cast<int>(bytes.size())) && rc == Z_OK;
}

inline bool WritePlain(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

inline std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace tessera::data::testing
