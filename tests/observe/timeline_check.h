// Structural checks of a Chrome trace written by the timeline (common/timeline.h), shared
// by the unit and the job tests: required keys and types, and that the complete events
// of one thread form a proper nesting (no two spans partly overlap).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace tessera::testing {

struct TraceSpan {
  std::string name;
  int64_t ts = 0, dur = 0;
  int pid = 0, tid = 0;
  nlohmann::json args;
  int64_t end() const { return ts + dur; }
  bool Contains(const TraceSpan& o) const { return pid == o.pid && tid == o.tid && ts <= o.ts && o.end() <= end(); }
};

struct Trace {
  std::vector<TraceSpan> spans;                       // "X" events
  std::map<int, std::string> process_names;           // pid -> name
  std::map<std::pair<int, int>, std::string> thread_names;  // (pid, tid) -> name
};

// Parses `path` and checks every event's keys and types (gtest failures on mismatch).
inline Trace LoadTrace(const std::string& path) {
  Trace t;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << path << " is not valid JSON";
  if (j.is_discarded()) return t;
  EXPECT_TRUE(j.is_object());
  EXPECT_TRUE(j.contains("traceEvents") && j["traceEvents"].is_array()) << path;
  if (!j.contains("traceEvents")) return t;
  for (const auto& e : j["traceEvents"]) {
    EXPECT_TRUE(e.is_object());
    EXPECT_TRUE(e.contains("ph") && e["ph"].is_string()) << e.dump();
    EXPECT_TRUE(e.contains("name") && e["name"].is_string()) << e.dump();
    EXPECT_TRUE(e.contains("pid") && e["pid"].is_number_integer()) << e.dump();
    EXPECT_TRUE(e.contains("tid") && e["tid"].is_number_integer()) << e.dump();
    const std::string ph = e.value("ph", "");
    if (ph == "X") {
      EXPECT_TRUE(e.contains("ts") && e["ts"].is_number_integer()) << e.dump();
      EXPECT_TRUE(e.contains("dur") && e["dur"].is_number_integer() && e["dur"].get<int64_t>() >= 0) << e.dump();
      EXPECT_TRUE(e.contains("cat") && e["cat"].is_string()) << e.dump();
      TraceSpan s;
      s.name = e.value("name", "");
      s.ts = e.value("ts", int64_t{0});
      s.dur = e.value("dur", int64_t{0});
      s.pid = e.value("pid", 0);
      s.tid = e.value("tid", 0);
      if (e.contains("args")) s.args = e["args"];
      t.spans.push_back(std::move(s));
    } else if (ph == "M") {
      EXPECT_TRUE(e.contains("args") && e["args"].is_object()) << e.dump();
      const std::string name = e.value("name", "");
      if (name == "process_name") t.process_names[e.value("pid", 0)] = e["args"].value("name", "");
      if (name == "thread_name") t.thread_names[{e.value("pid", 0), e.value("tid", 0)}] = e["args"].value("name", "");
    } else {
      ADD_FAILURE() << "unexpected phase " << ph << ": " << e.dump();
    }
  }
  return t;
}

// Spans of one thread must nest like calls: sorted by start (longer first on ties), each
// span either lies within the innermost open span or starts after it ended.
inline void ExpectProperNesting(const Trace& t) {
  std::map<std::pair<int, int>, std::vector<const TraceSpan*>> by_thread;
  for (const TraceSpan& s : t.spans) by_thread[{s.pid, s.tid}].push_back(&s);
  for (auto& [key, spans] : by_thread) {
    std::sort(spans.begin(), spans.end(), [](const TraceSpan* a, const TraceSpan* b) {
      return a->ts != b->ts ? a->ts < b->ts : a->dur > b->dur;
    });
    std::vector<const TraceSpan*> open;
    for (const TraceSpan* s : spans) {
      while (!open.empty() && open.back()->end() <= s->ts) open.pop_back();
      if (!open.empty()) {
        EXPECT_LE(s->end(), open.back()->end())
            << "pid " << key.first << " tid " << key.second << ": '" << s->name << "' [" << s->ts << ", " << s->end()
            << ") partly overlaps '" << open.back()->name << "' [" << open.back()->ts << ", " << open.back()->end()
            << ")";
      }
      open.push_back(s);
    }
  }
}

// The spans named `name` (optionally of one pid).
inline std::vector<const TraceSpan*> Named(const Trace& t, const std::string& name, int pid = -1) {
  std::vector<const TraceSpan*> out;
  for (const TraceSpan& s : t.spans) {
    if (s.name == name && (pid < 0 || s.pid == pid)) out.push_back(&s);
  }
  return out;
}

}  // namespace tessera::testing
