// GzLineReader: reads a text file line by line, gzip-compressed or plain (zlib detects
// which), for the text loaders (LIBSVM, corpora). Errors name the file and, for bad
// content, the 1-based line: callers report their own parse errors with where().
//
// A gzip stream that ends early (a truncated download) or has a bad CRC is reported as
// Corruption when the reader reaches it, never silently as a shorter file.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tessera::data {

class GzLineReader {
 public:
  // NotFound for a missing file, IOError when it cannot be opened.
  static Result<std::unique_ptr<GzLineReader>> Open(const std::string& path);
  ~GzLineReader();
  GzLineReader(const GzLineReader&) = delete;
  GzLineReader& operator=(const GzLineReader&) = delete;

  // Sets *line to the next line without its '\n' (and without a trailing '\r'). Returns
  // false at the end of the file, Corruption for a damaged or truncated gzip stream.
  // The view stays valid until the next call.
  Result<bool> Next(std::string_view* line);

  // "path:line" of the line Next() returned last.
  std::string where() const;
  const std::string& path() const { return path_; }
  int64_t line_number() const { return line_; }

 private:
  struct File;
  GzLineReader(std::string path, std::unique_ptr<File> file);
  // Reads more bytes into buf_; false at end of stream.
  Result<bool> Fill();

  std::string path_;
  std::unique_ptr<File> file_;
  std::vector<char> buf_;
  size_t begin_ = 0;  // first unread byte in buf_
  size_t end_ = 0;    // one past the last valid byte
  bool eof_ = false;
  int64_t line_ = 0;
  std::string carry_;  // a line longer than the buffer, assembled here
};

// The files a text loader reads for `path`: the path itself when it is a file, else
// every regular file in the directory whose name ends in .gz or .txt, in name order.
// NotFound when the path does not exist or the directory holds no such file.
Result<std::vector<std::string>> TextFilesAt(const std::string& path);

}  // namespace tessera::data
