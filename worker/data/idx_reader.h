// IdxReader: streams one gzip-compressed IDX file (LeCun's MNIST container) record by
// record, validating the header and that the file holds exactly the bytes it promises.
//
// Format (big-endian): u8 0, u8 0, u8 type (0x08 = unsigned byte), u8 ndims, then ndims
// u32 dims, then prod(dims) elements. dims[0] is the record count; one record is
// prod(dims[1:]) bytes. Images are magic 0x00000803 ([N, rows, cols]), labels 0x00000801
// ([N]). Only unsigned-byte payloads are supported. Plain (uncompressed) files are read
// too: zlib's gzread passes non-gzip input through unchanged.
//
// Every error names the file and the uncompressed byte offset where it was found, e.g.
// "data/mnist/x.gz: truncated at offset 7840016: expected 47040000 image bytes".
// Missing file -> NotFound; bad magic, bad dims, short or overlong payload, damaged gzip
// stream -> Corruption.
//
// Thread safety: an IdxReader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tessera::data {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;

class IdxReader {
 public:
  // Opens `path` and parses its header. `what` names the payload in messages ("image",
  // "label"). Returns NotFound when the file cannot be opened, Corruption when the magic
  // is not `expected_magic`, a dim is zero, or the payload size overflows 2^40 bytes.
  static Result<std::unique_ptr<IdxReader>> Open(const std::string& path, uint32_t expected_magic,
                                                 std::string_view what);
  ~IdxReader();
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t num_records() const { return dims_[0]; }
  int64_t record_bytes() const { return record_bytes_; }
  // Uncompressed offset of the first payload byte: 4 + 4 * ndims.
  int64_t header_bytes() const { return header_bytes_; }

  // Reads records [begin, end) into out (which must hold (end - begin) * record_bytes()
  // bytes), decompressing and discarding the records before `begin` that have not been
  // read yet. Reads are forward-only.
  // REQUIRES: next_record() <= begin <= end <= num_records().
  // Returns Corruption (with file and offset) if the file ends early or the stream is bad.
  Status ReadRecords(int64_t begin, int64_t end, uint8_t* out);

  // Index of the next record the stream will deliver.
  int64_t next_record() const { return next_record_; }

  // Decompresses (and discards) the records not yet read, then checks that the file ends
  // exactly after the last promised payload byte. Call once, after the last ReadRecords.
  // Returns Corruption on a short file, trailing bytes or a damaged stream.
  Status Finish();

 private:
  struct GzFile;
  IdxReader(std::string path, std::string what, std::unique_ptr<GzFile> file);

  // Reads exactly n bytes (or reports where and why it could not).
  Status ReadExactly(void* out, int64_t n, std::string_view context);
  Status Skip(int64_t n, std::string_view context);

  std::string path_;
  std::string what_;
  std::unique_ptr<GzFile> file_;
  std::vector<int64_t> dims_;
  int64_t record_bytes_ = 0;
  int64_t header_bytes_ = 0;
  int64_t offset_ = 0;  // uncompressed bytes consumed so far
  int64_t next_record_ = 0;
};

}  // namespace tessera::data
