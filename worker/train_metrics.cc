#include "worker/train_metrics.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/hash.h"

namespace tessera::worker {

namespace {

// A JSON number; JSON has no NaN or infinity, so those become null.
std::string Num(double v, const char* fmt = "%.6g") {
  if (!std::isfinite(v)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string Int(int64_t v) { return std::to_string(v); }

std::string Str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

}  // namespace

uint64_t ParamsDigest(const std::vector<const Tensor*>& values) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const Tensor* t : values) h = Fnv1a64(t->data(), t->nbytes(), h);
  return h;
}

std::string DigestHex(uint64_t digest) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, digest);
  return buf;
}

std::string SummaryJson(const TrainSummary& s) {
  const PhaseTimes& p = s.phases;
  std::string j = "{\"event\":\"summary\"";
  j += ",\"model\":" + Str(s.model);
  j += ",\"sync\":" + Str(s.sync);
  j += ",\"workers\":" + Int(s.workers);
  j += ",\"servers\":" + Int(s.servers);
  j += ",\"steps\":" + Int(s.steps);
  j += ",\"batch_size\":" + Int(s.batch_size);
  j += ",\"epochs\":" + Num(s.epochs, "%.4g");
  j += ",\"samples\":" + Int(s.samples);
  j += ",\"samples_per_sec\":" + Num(s.samples_per_sec, "%.1f");
  j += ",\"final_loss\":" + Num(s.final_loss);
  j += ",\"test_accuracy\":" + Num(s.test_accuracy, "%.6f");
  j += ",\"test_loss\":" + Num(s.test_loss);
  j += ",\"test_examples\":" + Int(s.test_examples);
  j += ",\"wall_s\":" + Num(s.wall_s, "%.3f");
  j += ",\"setup_s\":" + Num(s.setup_s, "%.3f");
  j += ",\"train_s\":" + Num(s.train_s, "%.3f");
  j += ",\"final_eval_s\":" + Num(s.final_eval_s, "%.3f");
  j += ",\"data_s\":" + Num(p.data_s, "%.3f");
  j += ",\"compute_s\":" + Num(p.compute_s, "%.3f");
  j += ",\"issue_s\":" + Num(p.issue_s, "%.3f");
  j += ",\"push_s\":" + Num(p.push_s, "%.3f");
  j += ",\"pull_s\":" + Num(p.pull_s, "%.3f");
  j += ",\"comm_s\":" + Num(p.issue_s + p.push_s + p.pull_s, "%.3f");
  j += ",\"report_s\":" + Num(p.report_s, "%.3f");
  j += ",\"eval_s\":" + Num(p.eval_s, "%.3f");
  j += ",\"bytes_pushed\":" + std::to_string(s.bytes_pushed);
  j += ",\"bytes_pulled\":" + std::to_string(s.bytes_pulled);
  if (s.bytes_allreduced > 0) j += ",\"bytes_allreduced\":" + std::to_string(s.bytes_allreduced);
  j += ",\"params_digest\":" + Str(DigestHex(s.params_digest));
  if (s.test_auc >= 0) j += ",\"test_auc\":" + Num(s.test_auc, "%.6f");
  if (s.logloss >= 0) j += ",\"logloss\":" + Num(s.logloss, "%.6f");
  if (s.heldout_loss >= 0) j += ",\"heldout_loss\":" + Num(s.heldout_loss, "%.6f");
  if (s.initial_eval_loss >= 0) j += ",\"initial_eval_loss\":" + Num(s.initial_eval_loss, "%.6f");
  if (s.keys_pushed > 0 || s.keys_pulled > 0) {
    j += ",\"keys_pushed\":" + std::to_string(s.keys_pushed) + ",\"keys_pulled\":" + std::to_string(s.keys_pulled);
  }
  return j + "}";
}

Result<std::unique_ptr<MetricsWriter>> MetricsWriter::Open(const std::string& path) {
  if (path.empty()) return std::unique_ptr<MetricsWriter>(new MetricsWriter(nullptr));
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  // O_APPEND: the coordinator appends its rank_metrics lines to the same file
  // (docs/metrics.md); each flushed line is one write, so lines never interleave.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  std::FILE* f = fd < 0 ? nullptr : ::fdopen(fd, "a");
  if (f == nullptr) {
    if (fd >= 0) ::close(fd);
    return Status::InvalidArgument("--metrics_out=" + path + ": cannot open for writing: " +
                                   std::strerror(errno));
  }
  return std::unique_ptr<MetricsWriter>(new MetricsWriter(f));
}

MetricsWriter::~MetricsWriter() {
  if (f_ != nullptr) std::fclose(f_);
}

void MetricsWriter::Line(const std::string& json) {
  if (f_ == nullptr) return;
  // The coordinator appends rank_metrics lines under the same lock and never after a
  // summary line (coordinator/coordinator_metrics.cc), so the summary stays last.
  const int fd = fileno(f_);
  while (::flock(fd, LOCK_EX) != 0 && errno == EINTR) {
  }
  std::fputs(json.c_str(), f_);
  std::fputc('\n', f_);
  std::fflush(f_);
  ::flock(fd, LOCK_UN);
}

void MetricsWriter::Step(int64_t step, double epoch, double loss, double samples_per_sec) {
  if (f_ == nullptr) return;
  Line("{\"event\":\"step\",\"step\":" + Int(step) + ",\"epoch\":" + Num(epoch, "%.4f") +
       ",\"loss\":" + Num(loss, "%.17g") + ",\"samples_per_sec\":" + Num(samples_per_sec, "%.1f") +
       "}");
}

void MetricsWriter::Eval(int64_t step, double test_accuracy, double test_loss, int64_t examples) {
  if (f_ == nullptr) return;
  Line("{\"event\":\"eval\",\"step\":" + Int(step) + ",\"test_accuracy\":" +
       Num(test_accuracy, "%.6f") + ",\"test_loss\":" + Num(test_loss, "%.17g") +
       ",\"test_examples\":" + Int(examples) + "}");
}

void MetricsWriter::Summary(const TrainSummary& summary) { Line(SummaryJson(summary)); }

void MetricsWriter::Checkpoint(int64_t step, uint64_t bytes_written) {
  if (f_ == nullptr) return;
  Line("{\"event\":\"checkpoint\",\"step\":" + Int(step) + ",\"bytes_written\":" +
       Int(static_cast<int64_t>(bytes_written)) + "}");
}

}  // namespace tessera::worker
