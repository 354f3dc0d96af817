#include "worker/data/gz_lines.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace tessera::data {

namespace {
constexpr size_t kBufferBytes = size_t{1} << 18;
}  // namespace

struct GzLineReader::File {
  gzFile f = nullptr;
  ~File() {
    if (f != nullptr) gzclose(f);
  }
};

GzLineReader::GzLineReader(std::string path, std::unique_ptr<File> file)
    : path_(std::move(path)), file_(std::move(file)), buf_(kBufferBytes) {}

GzLineReader::~GzLineReader() = default;

Result<std::unique_ptr<GzLineReader>> GzLineReader::Open(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound(path + ": no such file");
  if (std::filesystem::is_directory(path, ec))
    return Status::InvalidArgument(path + ": is a directory, not a file");
  auto file = std::make_unique<File>();
  errno = 0;
  file->f = gzopen(path.c_str(), "rb");
  if (file->f == nullptr) {
    const int err = errno;
    return Status::IOError(path +
                           ": cannot open: " + (err != 0 ? std::strerror(err) : "gzopen failed"));
  }
  gzbuffer(file->f, 1 << 17);
  return std::unique_ptr<GzLineReader>(new GzLineReader(path, std::move(file)));
}

Result<bool> GzLineReader::Fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  const int n = gzread(file_->f, buf_.data() + end_, static_cast<unsigned>(buf_.size() - end_));
  int errnum = Z_OK;
  const char* msg = gzerror(file_->f, &errnum);
  // zlib reports a stream that stops before its trailer as Z_BUF_ERROR ("unexpected end
  // of file") and damaged data as Z_DATA_ERROR; both mean the file is not what it claims.
  if (n < 0 || (errnum != Z_OK && errnum != Z_STREAM_END)) {
    return Status::Corruption(path_ + ": damaged or truncated gzip stream after line " +
                              std::to_string(line_) + ": " + (msg != nullptr ? msg : "read error"));
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(n);
  return true;
}

Result<bool> GzLineReader::Next(std::string_view* line) {
  carry_.clear();
  bool carrying = false;
  for (;;) {
    const char* start = buf_.data() + begin_;
    const void* nl = std::memchr(start, '\n', end_ - begin_);
    if (nl != nullptr) {
      const size_t len = static_cast<const char*>(nl) - start;
      std::string_view piece(start, len);
      begin_ += len + 1;
      ++line_;
      if (carrying) {
        carry_.append(piece);
        piece = carry_;
      }
      if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
      *line = piece;
      return true;
    }
    if (end_ - begin_ == buf_.size()) {  // a line longer than the buffer
      carry_.append(start, end_ - begin_);
      carrying = true;
      begin_ = end_ = 0;
    }
    TESSERA_ASSIGN_OR_RETURN(bool more, Fill());
    if (!more) {
      if (end_ == begin_ && !carrying) return false;
      // Last line without a newline.
      carry_.append(buf_.data() + begin_, end_ - begin_);
      begin_ = end_;
      ++line_;
      std::string_view piece = carry_;
      if (!piece.empty() && piece.back() == '\r') piece.remove_suffix(1);
      *line = piece;
      return true;
    }
  }
}

std::string GzLineReader::where() const { return path_ + ":" + std::to_string(line_); }

Result<std::vector<std::string>> TextFilesAt(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound(path + ": no such file or directory");
  if (!fs::is_directory(path, ec)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    const auto ends = [&](std::string_view s) {
      return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    if (ends(".gz") || ends(".txt")) files.push_back(e.path().string());
  }
  if (ec) return Status::IOError(path + ": cannot list: " + ec.message());
  std::sort(files.begin(), files.end());
  if (files.empty()) return Status::NotFound(path + ": no .gz or .txt file in the directory");
  return files;
}

}  // namespace tessera::data
