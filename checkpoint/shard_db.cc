#include "checkpoint/shard_db.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "checkpoint/crash_point.h"
#include "checkpoint/fs_util.h"
#include "common/hash.h"

namespace tessera::checkpoint {
namespace fs = std::filesystem;

namespace {

// RocksDB's informational LOG would add files to a checkpoint (and a read-only open
// would rotate them); Tessera logs what matters itself.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

rocksdb::Options BaseOptions() {
  rocksdb::Options o;
  o.info_log = std::make_shared<SilentLogger>();
  o.compression = rocksdb::kNoCompression;  // float bits hardly compress; it would cost CPU
  o.disable_auto_compactions = true;        // written once, never rewritten
  o.max_open_files = 64;
  o.write_buffer_size = 256 << 20;
  o.paranoid_checks = true;
  return o;
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(what + ": " + s.ToString());
  if (s.IsInvalidArgument()) return Status::InvalidArgument(what + ": " + s.ToString());
  return Status::IOError(what + ": " + s.ToString());
}

uint64_t DigestStep(uint64_t h, const std::string_view key, uint32_t crc) {
  h = Fnv1a64(key.data(), key.size(), h);
  return Fnv1a64(&crc, sizeof(crc), h);
}

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Result<WriteMethod> ParseWriteMethod(const std::string& s) {
  if (s == "sst") return WriteMethod::kSstIngest;
  if (s == "batch") return WriteMethod::kWriteBatch;
  return Status::InvalidArgument("unknown checkpoint write method '" + s + "': expected sst or batch");
}

const char* WriteMethodName(WriteMethod m) { return m == WriteMethod::kSstIngest ? "sst" : "batch"; }

Result<WriteStats> WriteShard(const std::string& dir, std::vector<RecordRef> records, WriteMethod method,
                              const char* crash_point_mid_write, const std::atomic<bool>* cancel) {
  auto cancelled = [&] { return cancel != nullptr && cancel->load(std::memory_order_relaxed); };
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> keys(records.size());
  for (size_t i = 0; i < records.size(); ++i) keys[i] = EncodeKey(records[i].kind, records[i].param, records[i].position);
  std::vector<size_t> order(records.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return keys[a] < keys[b]; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (keys[order[i]] == keys[order[i - 1]]) {
      return Status::Internal("checkpoint writer got two records for parameter '" +
                              std::string(records[order[i]].param) + "' at position " +
                              std::to_string(records[order[i]].position));
    }
  }

  rocksdb::Options opts = BaseOptions();
  opts.create_if_missing = true;
  opts.error_if_exists = true;
  WriteStats stats;
  uint64_t digest = Fnv1a64(nullptr, 0);
  std::string value;
  const size_t half = order.size() / 2;

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::IOError("creating " + dir + ": " + ec.message());

  rocksdb::DB* raw = nullptr;
  if (method == WriteMethod::kSstIngest) {
    const std::string sst = dir + "/ingest.sst.tmp";
    {
      rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), opts);
      TESSERA_RETURN_IF_ERROR(FromRocks(writer.Open(sst), "opening " + sst));
      for (size_t n = 0; n < order.size(); ++n) {
        if (n == half && crash_point_mid_write != nullptr) CrashPoint(crash_point_mid_write);
        if (cancelled()) return Status::Aborted("checkpoint write to " + dir + " cancelled");
        const size_t i = order[n];
        value.clear();
        EncodeValue(records[i], &value);
        digest = DigestStep(digest, keys[i], *StoredChecksum(value));
        stats.value_bytes += keys[i].size() + value.size();
        TESSERA_RETURN_IF_ERROR(FromRocks(writer.Put(keys[i], value), "writing " + sst));
      }
      if (!order.empty()) TESSERA_RETURN_IF_ERROR(FromRocks(writer.Finish(), "finishing " + sst));
    }
    TESSERA_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(opts, dir, &raw), "creating the database " + dir));
    std::unique_ptr<rocksdb::DB> db(raw);
    if (!order.empty()) {
      rocksdb::IngestExternalFileOptions io;
      io.move_files = true;
      io.verify_checksums_before_ingest = false;  // we just wrote it; crcs are per value anyway
      TESSERA_RETURN_IF_ERROR(FromRocks(db->IngestExternalFile({sst}, io), "ingesting " + sst));
    }
    TESSERA_RETURN_IF_ERROR(FromRocks(db->Close(), "closing " + dir));
    fs::remove(sst, ec);  // a hard link of the ingested file remains in the database
  } else {
    TESSERA_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(opts, dir, &raw), "creating the database " + dir));
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteOptions wo;
    wo.disableWAL = true;  // durability comes from the Flush below
    rocksdb::WriteBatch batch;
    for (size_t n = 0; n < order.size(); ++n) {
      if (n == half && crash_point_mid_write != nullptr) CrashPoint(crash_point_mid_write);
      if (cancelled()) return Status::Aborted("checkpoint write to " + dir + " cancelled");
      const size_t i = order[n];
      value.clear();
      EncodeValue(records[i], &value);
      digest = DigestStep(digest, keys[i], *StoredChecksum(value));
      stats.value_bytes += keys[i].size() + value.size();
      batch.Put(keys[i], value);
      if (batch.GetDataSize() >= (8u << 20)) {
        TESSERA_RETURN_IF_ERROR(FromRocks(db->Write(wo, &batch), "writing " + dir));
        batch.Clear();
      }
    }
    if (batch.Count() > 0) TESSERA_RETURN_IF_ERROR(FromRocks(db->Write(wo, &batch), "writing " + dir));
    rocksdb::FlushOptions fo;
    fo.wait = true;
    TESSERA_RETURN_IF_ERROR(FromRocks(db->Flush(fo), "flushing " + dir));
    TESSERA_RETURN_IF_ERROR(FromRocks(db->Close(), "closing " + dir));
  }
  TESSERA_RETURN_IF_ERROR(FsyncDir(dir));
  stats.records = order.size();
  stats.digest = digest;
  TESSERA_ASSIGN_OR_RETURN(auto files, ListFiles(dir));
  for (const auto& f : files) stats.file_bytes += f.size;
  stats.seconds = Since(start);
  return stats;
}

Result<std::unique_ptr<ShardReader>> ShardReader::Open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound("no checkpoint database at " + dir);
  rocksdb::Options opts = BaseOptions();
  rocksdb::DB* raw = nullptr;
  TESSERA_RETURN_IF_ERROR(FromRocks(rocksdb::DB::OpenForReadOnly(opts, dir, &raw), "opening " + dir));
  return std::unique_ptr<ShardReader>(new ShardReader(dir, raw));
}

ShardReader::~ShardReader() {
  if (db_ != nullptr) {
    db_->Close().PermitUncheckedError();
    delete db_;
  }
}

namespace {
rocksdb::ReadOptions BulkRead() {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  ro.readahead_size = 4 << 20;
  return ro;
}

Status Decode(const rocksdb::Iterator& it, const std::string& dir, Record* r) {
  rocksdb::Slice k = it.key(), v = it.value();
  const std::string_view key(k.data(), k.size());
  TESSERA_RETURN_IF_ERROR_CTX(DecodeKey(key, &r->kind, &r->param, &r->position), dir);
  Status st = DecodeValue(std::string_view(v.data(), v.size()), r);
  if (!st.ok()) {
    return st.WithContext(dir + ": record of '" + r->param + "' at " + std::to_string(r->position));
  }
  return Status::OK();
}
}  // namespace

Status ShardReader::ReadDense(const std::string& param, uint64_t begin, uint64_t end,
                              const std::function<Status(const Record&)>& fn) const {
  return ReadDenseRanges(param, {{begin, end}}, [&](size_t, const Record& r) { return fn(r); });
}

Status ShardReader::ReadDenseRanges(const std::string& param,
                                    const std::vector<std::pair<uint64_t, uint64_t>>& ranges,
                                    const std::function<Status(size_t, const Record&)>& fn) const {
  const std::string prefix = KeyPrefix(RecordKind::kDense, param);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(BulkRead()));
  Record r;
  bool on = false;  // the iterator is on a record of `param`, decoded into r
  auto load = [&]() -> Status {
    on = it->Valid() && it->key().starts_with(prefix);
    return on ? Decode(*it, dir_, &r) : Status::OK();
  };
  auto ends = [&] { return r.position + r.values.size(); };
  for (size_t i = 0; i < ranges.size(); ++i) {
    const auto [begin, end] = ranges[i];
    // Ranges usually follow each other: step forward a little before seeking.
    for (int hops = 0; on && r.position <= begin && ends() <= begin && hops < 2; ++hops) {
      it->Next();
      TESSERA_RETURN_IF_ERROR(load());
    }
    if (!on || r.position > begin || ends() <= begin) {
      // The record that starts at or before `begin` may still cover it.
      it->SeekForPrev(EncodeKey(RecordKind::kDense, param, begin));
      if (!it->Valid() || !it->key().starts_with(prefix)) it->Seek(prefix);
      TESSERA_RETURN_IF_ERROR(load());
    }
    while (on && r.position < end) {
      if (ends() > begin) TESSERA_RETURN_IF_ERROR(fn(i, r));
      if (ends() >= end) break;  // it may cover the next range too: stay on it
      it->Next();
      TESSERA_RETURN_IF_ERROR(load());
    }
  }
  return FromRocks(it->status(), "reading " + dir_);
}

Status ShardReader::ReadRows(const std::string& param, const std::function<Status(const Record&)>& fn,
                             RecordKind kind) const {
  const std::string prefix = KeyPrefix(kind, param);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(BulkRead()));
  Record r;
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    TESSERA_RETURN_IF_ERROR(Decode(*it, dir_, &r));
    TESSERA_RETURN_IF_ERROR(fn(r));
  }
  return FromRocks(it->status(), "reading " + dir_);
}

Result<ScanStats> ShardReader::Scan(const std::function<Status(const Record&)>& fn) const {
  ScanStats s;
  s.digest = Fnv1a64(nullptr, 0);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(BulkRead()));
  Record r;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    rocksdb::Slice k = it->key(), v = it->value();
    const std::string_view key(k.data(), k.size()), value(v.data(), v.size());
    if (fn) {
      TESSERA_RETURN_IF_ERROR(Decode(*it, dir_, &r));
    } else {
      TESSERA_RETURN_IF_ERROR_CTX(DecodeKey(key, &r.kind, &r.param, &r.position), dir_);
      Status st = CheckValue(value);
      if (!st.ok()) return st.WithContext(dir_ + ": record of '" + r.param + "' at " + std::to_string(r.position));
    }
    s.digest = DigestStep(s.digest, key, *StoredChecksum(value));
    ++s.records;
    (r.kind == RecordKind::kDense ? s.dense_records : s.sparse_records) += 1;
    s.bytes += key.size() + value.size();
    if (fn) TESSERA_RETURN_IF_ERROR(fn(r));
  }
  TESSERA_RETURN_IF_ERROR(FromRocks(it->status(), "reading " + dir_));
  return s;
}

}  // namespace tessera::checkpoint
