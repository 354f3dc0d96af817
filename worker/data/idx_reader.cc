#include "worker/data/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

namespace tessera::data {
namespace {

// Largest payload we accept: far above any data set we load, far below int64 overflow.
constexpr int64_t kMaxPayloadBytes = int64_t{1} << 40;
// gzread takes an unsigned int length; read in bounded pieces.
constexpr int64_t kMaxReadChunk = int64_t{1} << 24;

std::string Hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

struct IdxReader::GzFile {
  gzFile f = nullptr;
  ~GzFile() {
    if (f != nullptr) gzclose(f);
  }
};

IdxReader::IdxReader(std::string path, std::string what, std::unique_ptr<GzFile> file)
    : path_(std::move(path)), what_(std::move(what)), file_(std::move(file)) {}

IdxReader::~IdxReader() = default;

Result<std::unique_ptr<IdxReader>> IdxReader::Open(const std::string& path, uint32_t expected_magic,
                                                   std::string_view what) {
  auto file = std::make_unique<GzFile>();
  errno = 0;
  file->f = gzopen(path.c_str(), "rb");
  if (file->f == nullptr) {
    const int err = errno;
    std::string reason = err != 0 ? std::strerror(err) : "gzopen failed";
    if (err == ENOENT || err == ENOTDIR) return Status::NotFound(path + ": " + reason);
    return Status::IOError(path + ": cannot open: " + reason);
  }
  gzbuffer(file->f, 1 << 17);
  std::unique_ptr<IdxReader> r(new IdxReader(path, std::string(what), std::move(file)));

  unsigned char magic_bytes[4];
  TESSERA_RETURN_IF_ERROR(r->ReadExactly(magic_bytes, 4, "magic number"));
  const uint32_t magic = BigEndian32(magic_bytes);
  if (magic != expected_magic) {
    return Status::Corruption(path + ": bad magic " + Hex32(magic) + " at offset 0: expected " +
                              Hex32(expected_magic) + " (IDX " + r->what_ + " file)");
  }
  const int ndims = magic_bytes[3];
  if (ndims == 0) {
    return Status::Corruption(path + ": IDX header at offset 0 declares no dimensions");
  }
  int64_t payload = 1;
  for (int d = 0; d < ndims; ++d) {
    const int64_t at = r->offset_;
    unsigned char dim_bytes[4];
    TESSERA_RETURN_IF_ERROR(r->ReadExactly(dim_bytes, 4, "header dimension " + std::to_string(d)));
    const int64_t dim = BigEndian32(dim_bytes);
    if (dim == 0 && d > 0) {
      return Status::Corruption(path + ": dimension " + std::to_string(d) + " is 0 at offset " +
                                std::to_string(at));
    }
    // Checked before multiplying: payload (<= 2^40) times a 32-bit dim could overflow
    // int64 (found by data_fuzzer) and wrap to a small, "valid" size.
    const int64_t factor = std::max<int64_t>(dim, 1);
    if (payload > kMaxPayloadBytes / factor) payload = kMaxPayloadBytes + 1;
    else payload *= factor;
    if (payload > kMaxPayloadBytes) {
      return Status::Corruption(path + ": dimensions at offset " + std::to_string(at) +
                                " promise more than 2^40 bytes");
    }
    r->dims_.push_back(dim);
  }
  r->header_bytes_ = r->offset_;
  r->record_bytes_ = 1;
  for (int d = 1; d < ndims; ++d) r->record_bytes_ *= r->dims_[d];
  return r;
}

Status IdxReader::ReadExactly(void* out, int64_t n, std::string_view context) {
  auto* p = static_cast<unsigned char*>(out);
  int64_t done = 0;
  while (done < n) {
    const unsigned want = static_cast<unsigned>(std::min(n - done, kMaxReadChunk));
    const int got = gzread(file_->f, p + done, want);
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(file_->f, &errnum);
      return Status::Corruption(path_ + ": damaged gzip stream at offset " +
                                std::to_string(offset_) + " while reading " + std::string(context) +
                                ": " + (msg ? msg : "unknown zlib error"));
    }
    if (got == 0) {
      // gzread returns what it could; a truncated gzip member sets Z_BUF_ERROR, a short
      // but well-formed member just ends. Both are "truncated" for us.
      int errnum = 0;
      const char* msg = gzerror(file_->f, &errnum);
      std::string why =
          errnum != Z_OK && msg != nullptr && *msg ? std::string(" (") + msg + ")" : "";
      return Status::Corruption(path_ + ": truncated at offset " + std::to_string(offset_) +
                                ": expected " + std::string(context) + why);
    }
    done += got;
    offset_ += got;
  }
  return Status::OK();
}

Status IdxReader::Skip(int64_t n, std::string_view context) {
  std::vector<unsigned char> scratch(static_cast<size_t>(std::min(n, kMaxReadChunk)));
  while (n > 0) {
    const int64_t step = std::min<int64_t>(n, static_cast<int64_t>(scratch.size()));
    TESSERA_RETURN_IF_ERROR(ReadExactly(scratch.data(), step, context));
    n -= step;
  }
  return Status::OK();
}

Status IdxReader::ReadRecords(int64_t begin, int64_t end, uint8_t* out) {
  if (begin < next_record_ || begin > end || end > num_records()) {
    return Status::InvalidArgument(path_ + ": records [" + std::to_string(begin) + ", " +
                                   std::to_string(end) + ") not readable: next is " +
                                   std::to_string(next_record_) + " of " +
                                   std::to_string(num_records()));
  }
  const std::string context =
      std::to_string(num_records() * record_bytes_) + " " + what_ + " bytes";
  TESSERA_RETURN_IF_ERROR(Skip((begin - next_record_) * record_bytes_, context));
  TESSERA_RETURN_IF_ERROR(ReadExactly(out, (end - begin) * record_bytes_, context));
  next_record_ = end;
  return Status::OK();
}

Status IdxReader::Finish() {
  const std::string context =
      std::to_string(num_records() * record_bytes_) + " " + what_ + " bytes";
  TESSERA_RETURN_IF_ERROR(Skip((num_records() - next_record_) * record_bytes_, context));
  next_record_ = num_records();
  unsigned char extra;
  const int got = gzread(file_->f, &extra, 1);
  if (got < 0) {
    int errnum = 0;
    const char* msg = gzerror(file_->f, &errnum);
    return Status::Corruption(path_ + ": damaged gzip stream at offset " + std::to_string(offset_) +
                              " after the payload: " + (msg ? msg : "unknown zlib error"));
  }
  if (got > 0) {
    return Status::Corruption(path_ + ": trailing data at offset " + std::to_string(offset_) +
                              ": expected the file to end after " + context);
  }
  int errnum = 0;
  const char* msg = gzerror(file_->f, &errnum);
  if (errnum != Z_OK) {
    // A gzip member cut inside its trailer (CRC/length) surfaces here.
    return Status::Corruption(path_ + ": damaged gzip stream at offset " + std::to_string(offset_) +
                              " after the payload: " + (msg ? msg : "unknown zlib error"));
  }
  return Status::OK();
}

}  // namespace tessera::data
