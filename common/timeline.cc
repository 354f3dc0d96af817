#include "common/timeline.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace tessera::timeline {

namespace detail {
std::atomic<bool> g_enabled{false};
}  // namespace detail

namespace {

struct Event {
  const char* name;
  const char* cat;
  int64_t ts;
  int64_t dur;
  const char* k1;
  int64_t v1;
  const char* k2;
  int64_t v2;
};

struct ThreadBuffer {
  std::mutex mu;
  std::vector<Event> events;  // guarded by mu
  std::string name;           // guarded by mu
  int tid = 0;                // constant after registration
};

// Everything but the buffers' contents is guarded by mu; the file and the formatting
// scratch by file_mu (held by the flusher and by Stop, never by a recording thread).
struct Recorder {
  std::mutex mu;
  std::vector<std::shared_ptr<ThreadBuffer>> buffers;
  std::condition_variable cv;
  bool stopping = false;
  std::thread flusher;
  Options options;

  std::mutex file_mu;
  FILE* file = nullptr;
  long events_end = 0;  // where the next event goes (the footer starts here)
  std::unordered_map<const ThreadBuffer*, std::string> named;  // thread names written so far
  std::string scratch;
};

// Never destroyed: threads may record while the process exits.
Recorder& R() {
  static Recorder* r = new Recorder;
  return *r;
}

thread_local std::shared_ptr<ThreadBuffer> tl_buffer;

ThreadBuffer& Buffer() {
  if (!tl_buffer) {
    auto b = std::make_shared<ThreadBuffer>();
    b->tid = static_cast<int>(::syscall(SYS_gettid));
    Recorder& r = R();
    std::lock_guard<std::mutex> l(r.mu);
    r.buffers.push_back(b);
    tl_buffer = std::move(b);
  }
  return *tl_buffer;
}

constexpr char kFooter[] = "\n]}\n";

void AppendEscaped(std::string* out, const std::string& s) {
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char u[8];
      std::snprintf(u, sizeof(u), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      *out += u;
    } else {
      out->push_back(c);
    }
  }
}

void AppendEvent(std::string* out, int pid, int tid, const Event& e) {
  char buf[256];
  int n = std::snprintf(buf, sizeof(buf), ",\n{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%lld,\"dur\":%lld,"
                        "\"pid\":%d,\"tid\":%d",
                        e.name, e.cat, static_cast<long long>(e.ts), static_cast<long long>(e.dur), pid, tid);
  out->append(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1)));
  if (e.k1 != nullptr || e.k2 != nullptr) {
    *out += ",\"args\":{";
    if (e.k1 != nullptr) {
      n = std::snprintf(buf, sizeof(buf), "\"%s\":%lld", e.k1, static_cast<long long>(e.v1));
      out->append(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1)));
    }
    if (e.k2 != nullptr) {
      n = std::snprintf(buf, sizeof(buf), "%s\"%s\":%lld", e.k1 != nullptr ? "," : "", e.k2,
                        static_cast<long long>(e.v2));
      out->append(buf, static_cast<size_t>(std::min<int>(n, sizeof(buf) - 1)));
    }
    out->push_back('}');
  }
  out->push_back('}');
}

void AppendMetadata(std::string* out, const char* what, int pid, int tid, const std::string& key,
                    const std::string& value, bool quote) {
  *out += ",\n{\"name\":\"";
  *out += what;
  *out += "\",\"ph\":\"M\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) + ",\"args\":{\"";
  *out += key;
  *out += "\":";
  if (quote) out->push_back('"');
  AppendEscaped(out, value);
  if (quote) out->push_back('"');
  *out += "}}";
}

// Writes `r.scratch` at the end of the events and the footer after it. file_mu held.
void WriteScratch(Recorder& r) {
  if (r.file == nullptr || r.scratch.empty()) return;
  if (std::fseek(r.file, r.events_end, SEEK_SET) != 0 ||
      std::fwrite(r.scratch.data(), 1, r.scratch.size(), r.file) != r.scratch.size()) {
    // A full disk must not stop training; the file keeps what was written before.
    std::fprintf(stderr, "timeline: writing %s failed: %s; no more events are written\n", r.options.path.c_str(),
                 std::strerror(errno));
    std::fclose(r.file);
    r.file = nullptr;
    return;
  }
  r.events_end = std::ftell(r.file);
  std::fwrite(kFooter, 1, sizeof(kFooter) - 1, r.file);
  std::fflush(r.file);
  r.scratch.clear();
}

// Moves every buffered event into the file. file_mu held.
void FlushLocked(Recorder& r) {
  std::vector<std::shared_ptr<ThreadBuffer>> buffers;
  {
    std::lock_guard<std::mutex> l(r.mu);
    // Buffers of threads that have exited and whose events are written can go.
    std::erase_if(r.buffers, [&r](const std::shared_ptr<ThreadBuffer>& b) {
      std::lock_guard<std::mutex> bl(b->mu);
      const bool gone = b.use_count() == 1 && b->events.empty();
      if (gone) r.named.erase(b.get());
      return gone;
    });
    buffers = r.buffers;
  }
  std::vector<Event> events;
  for (const auto& b : buffers) {
    std::string name;
    {
      std::lock_guard<std::mutex> l(b->mu);
      events.swap(b->events);
      name = b->name;
    }
    if (!events.empty() && !name.empty() && r.named[b.get()] != name) {
      AppendMetadata(&r.scratch, "thread_name", r.options.pid, b->tid, "name", name, true);
      r.named[b.get()] = name;
    }
    for (const Event& e : events) AppendEvent(&r.scratch, r.options.pid, b->tid, e);
    events.clear();
  }
  WriteScratch(r);
}

void FlusherMain(Recorder* r) {
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(r->options.flush_interval_s));
  std::unique_lock<std::mutex> l(r->mu);
  while (!r->stopping) {
    r->cv.wait_for(l, interval, [r] { return r->stopping; });
    if (r->stopping) break;
    l.unlock();
    {
      std::lock_guard<std::mutex> fl(r->file_mu);
      FlushLocked(*r);
    }
    l.lock();
  }
}

}  // namespace

int64_t NowMicros() {
  struct Base {
    std::chrono::steady_clock::time_point steady;
    int64_t wall_us;
  };
  static const Base base = [] {
    Base b;
    b.steady = std::chrono::steady_clock::now();
    b.wall_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    return b;
  }();
  return base.wall_us +
         std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - base.steady).count();
}

void SetThreadName(const char* name) {
  // Hooks call this before each span; only a change costs more than a compare.
  thread_local const char* current = nullptr;
  if (current == name) return;
  current = name;
  ThreadBuffer& b = Buffer();
  std::lock_guard<std::mutex> l(b.mu);
  b.name = name;
}

void Record(const char* name, const char* cat, int64_t ts_us, int64_t dur_us, const char* k1, int64_t v1,
            const char* k2, int64_t v2) {
  if (!Enabled()) return;
  ThreadBuffer& b = Buffer();
  std::lock_guard<std::mutex> l(b.mu);
  b.events.push_back(Event{name, cat, ts_us, dur_us, k1, v1, k2, v2});
}

Status Start(const Options& options) {
  Recorder& r = R();
  std::lock_guard<std::mutex> fl(r.file_mu);
  if (r.file != nullptr || Enabled()) {
    return Status::FailedPrecondition("--timeline: a recording to " + r.options.path + " is already running");
  }
  if (!(options.flush_interval_s > 0)) {
    return Status::InvalidArgument("timeline flush interval must be > 0");
  }
  FILE* f = std::fopen(options.path.c_str(), "w");
  if (f == nullptr) {
    return Status::InvalidArgument("--timeline=" + options.path + ": cannot open the file for writing: " +
                                   std::strerror(errno));
  }
  NowMicros();  // fixes the clock's base before the first span
  {
    std::lock_guard<std::mutex> l(r.mu);
    for (const auto& b : r.buffers) {
      std::lock_guard<std::mutex> bl(b->mu);
      b->events.clear();  // left from an earlier recording
    }
    r.named.clear();
    r.options = options;
    r.stopping = false;
  }
  r.file = f;
  const std::string header = "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"writer\":\"tessera timeline\"},\"traceEvents\":[\n";
  std::fwrite(header.data(), 1, header.size(), f);
  // The first event carries no leading comma; every later one starts with ",\n".
  r.scratch.clear();
  AppendMetadata(&r.scratch, "process_name", options.pid, 0, "name", options.process_name, true);
  r.scratch.erase(0, 2);
  AppendMetadata(&r.scratch, "process_sort_index", options.pid, 0, "sort_index", std::to_string(options.sort_index),
                 false);
  r.events_end = std::ftell(f);
  WriteScratch(r);
  if (r.file == nullptr) return Status::InvalidArgument("--timeline=" + options.path + ": cannot write the file");
  detail::g_enabled.store(true, std::memory_order_relaxed);
  r.flusher = std::thread(FlusherMain, &r);
  return Status::OK();
}

void Stop() {
  Recorder& r = R();
  if (!Enabled()) return;
  detail::g_enabled.store(false, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> l(r.mu);
    r.stopping = true;
  }
  r.cv.notify_all();
  if (r.flusher.joinable()) r.flusher.join();
  std::lock_guard<std::mutex> fl(r.file_mu);
  FlushLocked(r);
  if (r.file != nullptr) {
    std::fclose(r.file);
    r.file = nullptr;
  }
}

}  // namespace tessera::timeline
