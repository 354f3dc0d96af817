// Timeline: spans of what each thread of a process was doing, written as a Chrome trace
// (the JSON object format with "traceEvents" that chrome://tracing and ui.perfetto.dev
// load). `--timeline=FILE.json` turns it on (launch/timeline_flags.h); docs/observability.md
// lists the spans and how to open the files.
//
// Recording: a Span measures its scope with a monotonic clock and appends one complete
// event ("ph":"X", ts/dur in microseconds) to the calling thread's own buffer. No I/O
// and no shared lock on that path: the buffer's mutex is only ever contended by the
// flusher for the time of a vector swap. When the timeline is off a Span costs one
// relaxed atomic load.
//
// Timestamps are the wall clock at Start plus the monotonic time since, so spans never
// go backwards within a process and processes on different hosts line up to within the
// hosts' clock sync.
//
// File: written by a flusher thread every Options::flush_interval_s and at Stop. After
// each flush the file is a complete, valid trace: the events are followed by the closing
// "]}", which the next flush overwrites. A crashed process loses at most the last
// interval (and a flush torn by the crash itself).
//
// Threads: Start/Stop are called by the process's main thread (launch/job.cc), once each
// per recording. Span, Record and SetThreadName may be called from any thread at any
// time (before Start and after Stop they do nothing). Each thread owns its buffer
// (registered on first use, kept by the registry after the thread exits so its events
// still get written); the flusher thread owns the file.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace tessera::timeline {

struct Options {
  std::string path;          // the file to (over)write
  int pid = 0;               // "pid" of every event: the process's rank in the job
  std::string process_name;  // shown as the process's track name, e.g. "worker 0 (rank 3)"
  int sort_index = 0;        // order of the process tracks in the viewer
  double flush_interval_s = 1.0;
};

namespace detail {
extern std::atomic<bool> g_enabled;
}  // namespace detail

// Whether a recording is running.
inline bool Enabled() { return detail::g_enabled.load(std::memory_order_relaxed); }

// Opens (truncates) options.path, writes the header and starts the flusher. Errors:
// InvalidArgument naming the path when it cannot be opened, FailedPrecondition when a
// recording is already running.
Status Start(const Options& options);

// Stops recording, writes every buffered event and closes the file. Spans still open
// are dropped. Does nothing when no recording runs.
void Stop();

// Microseconds on the timeline's clock.
int64_t NowMicros();

// Names the calling thread's track ("worker main", "server reactor", ...). Kept across
// recordings. `name` must have static storage; calling it again with the same pointer
// is a compare, so hooks call it before their spans.
void SetThreadName(const char* name);

// Appends one complete event to the calling thread's buffer. `name`, `cat` and the arg
// keys must have static storage (string literals): only the pointers are kept. An arg
// whose key is null is left out.
void Record(const char* name, const char* cat, int64_t ts_us, int64_t dur_us, const char* k1 = nullptr,
            int64_t v1 = 0, const char* k2 = nullptr, int64_t v2 = 0);

// One span: from construction to End() or destruction, on the constructing thread. A
// null `name` records nothing (for spans that only apply in some modes).
class Span {
 public:
  Span(const char* name, const char* cat, const char* k1 = nullptr, int64_t v1 = 0, const char* k2 = nullptr,
       int64_t v2 = 0)
      : name_(Enabled() ? name : nullptr), cat_(cat), k1_(k1), k2_(k2), v1_(v1), v2_(v2) {
    if (name_ != nullptr) start_ = NowMicros();
  }
  ~Span() { End(); }
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;

  // Sets the second arg (e.g. a byte count known only at the end).
  void set_arg2(const char* key, int64_t v) {
    k2_ = key;
    v2_ = v;
  }
  void End() {
    if (name_ == nullptr) return;
    const int64_t now = NowMicros();
    Record(name_, cat_, start_, now - start_, k1_, v1_, k2_, v2_);
    name_ = nullptr;
  }

 private:
  const char* name_;
  const char* cat_;
  const char* k1_;
  const char* k2_;
  int64_t v1_;
  int64_t v2_;
  int64_t start_ = 0;
};

}  // namespace tessera::timeline
