// The coordinator's observability: the JobStatus answer (`tessera status`), its own
// metrics and the job gauges, and the rank_metrics lines of --metrics_out. Reactor
// thread only, like the rest of Coordinator (coordinator.h).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glog/logging.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "coordinator/coordinator.h"
#include "wire/metrics_wire.h"

namespace tessera {

namespace {

uint64_t MsBetween(Clock::time_point a, Clock::time_point b) {
  return b > a ? static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count()) : 0;
}

// Appends `lines` under the file lock worker 0's MetricsWriter takes for each line, unless
// the file already ends with worker 0's summary. Returns false when it did (nothing
// written), true when the lines were appended.
Result<bool> AppendRankLines(int fd, const std::vector<std::string>& lines) {
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) return Status::Unavailable(std::string("flock: ") + std::strerror(errno));
  }
  struct Unlock {
    int fd;
    ~Unlock() { ::flock(fd, LOCK_UN); }
  } unlock{fd};
  struct stat sb{};
  if (::fstat(fd, &sb) != 0) return Status::Unavailable(std::string("fstat: ") + std::strerror(errno));
  // The last line (at most 16 KiB back) tells whether worker 0 has finished.
  const off_t tail = std::min<off_t>(sb.st_size, 16384);
  std::string buf(static_cast<size_t>(tail), '\0');
  if (tail > 0 && ::pread(fd, buf.data(), buf.size(), sb.st_size - tail) != tail) {
    return Status::Unavailable(std::string("reading the file's end: ") + std::strerror(errno));
  }
  if (!buf.empty() && buf.back() == '\n') buf.pop_back();
  const size_t nl = buf.rfind('\n');
  const std::string last = nl == std::string::npos ? buf : buf.substr(nl + 1);
  if (last.rfind("{\"event\":\"summary\"", 0) == 0) return false;
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  if (::write(fd, all.data(), all.size()) != static_cast<ssize_t>(all.size())) {
    return Status::Unavailable(std::string("short write: ") + std::strerror(errno));
  }
  return true;
}

}  // namespace

void Coordinator::FillStatus(wire::capnp::JobStatus::Builder js) {
  auto list = js.initMembers(static_cast<unsigned>(members_.members().size()));
  int64_t min_step = INT64_MAX, max_step = -1;
  int slowest = -1;
  const auto now = Clock::now();
  for (size_t i = 0; i < members_.members().size(); ++i) {
    const Member& m = members_.members()[i];
    auto e = list[static_cast<unsigned>(i)];
    e.setRole(m.role == MemberRole::kServer ? wire::Role::SERVER : wire::Role::WORKER);
    e.setRank(m.rank);
    e.setHost(m.host);
    e.setStep(m.step);
    e.setLastHeartbeatMsAgo(m.registered ? MsBetween(m.last_seen, now) : 0);
    e.setFinished(m.finished);
    RankMetrics rm = metrics_store_.Get(m.rank);
    if (rm.updates > 0) {
      e.setMetricsAgeMs(MsBetween(rm.updated, now));
      e.setStepsPerSec(rm.steps_per_sec);
      e.setSamplesPerSec(rm.samples_per_sec);
      wire::SamplesToWire(rm.samples, e.initMetrics(static_cast<unsigned>(rm.samples.size())));
    }
    if (m.role == MemberRole::kWorker && m.registered) {
      if (m.step < min_step) {
        min_step = m.step;
        slowest = m.rank;
      }
      max_step = std::max(max_step, m.step);
    }
  }
  js.setMinStep(min_step == INT64_MAX ? -1 : min_step);
  js.setMaxStep(max_step);
  js.setLastCheckpointStep(checkpoints_->last_checkpoint_step());
  js.setSlowestWorkerRank(slowest);
  js.setNumServers(static_cast<uint32_t>(options_.num_servers));
  js.setNumWorkers(static_cast<uint32_t>(options_.num_workers));
  js.setLastCheckpointUnixMs(checkpoint_seen_unix_ms_);
  js.setTrainingStarted(published_to_workers_);
  js.setUptimeMs(MsBetween(started_, now));
}

void Coordinator::OnMetricsTick() {
  const auto now = Clock::now();
  if (now - last_metrics_tick_ < wire::kMetricsReportInterval) return;
  last_metrics_tick_ = now;

  const int64_t ckpt = checkpoints_->last_checkpoint_step();
  if (ckpt != seen_checkpoint_step_) {
    seen_checkpoint_step_ = ckpt;
    checkpoint_seen_unix_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  }
  int64_t min_step = INT64_MAX, max_step = -1;
  int slowest = -1, registered = 0;
  for (const Member& m : members_.members()) {
    if (!m.registered) continue;
    ++registered;
    if (m.role != MemberRole::kWorker) continue;
    if (m.step < min_step) {
      min_step = m.step;
      slowest = m.rank;
    }
    max_step = std::max(max_step, m.step);
  }
  metrics_store_.SetJobGauge("min_step", static_cast<double>(min_step == INT64_MAX ? -1 : min_step));
  metrics_store_.SetJobGauge("max_step", static_cast<double>(max_step));
  metrics_store_.SetJobGauge("last_checkpoint_step", static_cast<double>(ckpt));
  metrics_store_.SetJobGauge("members_registered", registered);
  metrics_store_.SetJobGauge("slowest_worker_rank", slowest);
  metrics_store_.Update("coordinator", 0,
                        {{"rss_bytes", metrics::Kind::kGauge, static_cast<double>(metrics::ReadRssBytes()), 0, -1}},
                        now);

  // rank_metrics lines go into worker 0's --metrics_out file (docs/metrics.md) while
  // worker 0 trains: it truncates the file before its first step report, and once its
  // summary line is there nothing more is appended.
  if (options_.metrics.out.empty() || metrics_out_failed_ || finished_) return;
  const Member* w0 = members_.FindByRank(options_.num_servers + 1);
  if (w0 == nullptr || w0->step < 0) return;
  if (metrics_fd_ < 0) {
    metrics_fd_ = ::open(options_.metrics.out.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (metrics_fd_ < 0) {
      LOG(WARNING) << "--metrics_out=" << options_.metrics.out << ": cannot append rank metrics: "
                   << std::strerror(errno) << "; not writing them";
      metrics_out_failed_ = true;
      return;
    }
  }
  const double since = std::chrono::duration<double>(now - started_).count();
  auto lines = metrics_store_.TakeJsonLines(since);
  if (lines.empty()) return;
  auto st = AppendRankLines(metrics_fd_, lines);
  if (!st.ok()) {
    LOG(WARNING) << "--metrics_out=" << options_.metrics.out << ": " << st.status().ToString()
                 << "; not writing rank metrics any more";
    metrics_out_failed_ = true;
  } else if (!*st) {
    metrics_out_failed_ = true;  // worker 0 wrote its summary: the file is complete
  }
}

}  // namespace tessera
