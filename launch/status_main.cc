#include "launch/status_main.h"

#include <zmq.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/exit_codes.h"
#include "launch/job_auth.h"
#include "wire/metrics_wire.h"
#include "wire/socket.h"

namespace tessera::launch {
namespace {

using wire::capnp::JobStatus;
using wire::capnp::MemberStatus;

int Usage(FILE* out) {
  std::fprintf(out,
               "usage: tessera status ADDRESS [--json] [--timeout_s=S] [--key_file=PATH | --job_dir=DIR] [--auth=mac|curve]\n"
               "  ADDRESS        the coordinator's host:port (or tcp://host:port)\n"
               "  --json         one JSON object instead of the table\n"
               "  --timeout_s=S  give up after S seconds without an answer (default 5)\n"
               "  --key_file=P   the job's key file (default: $%s)\n"
               "  --job_dir=D    the job directory holding job.key\n"
               "  --auth=M       with a key file: mac (default, as the job's --auth=auto) or curve\n"
               "exit codes: 0 answered, 2 bad usage or refused, 3 no answer\n",
               kAuthKeyFileEnv);
  return out == stdout ? 0 : kExitConfig;
}

const char* RoleName(wire::capnp::Role r) {
  switch (r) {
    case wire::capnp::Role::SERVER: return "server";
    case wire::capnp::Role::WORKER: return "worker";
    case wire::capnp::Role::COORDINATOR: return "coordinator";
    default: return "tool";
  }
}

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

std::string JsonNum(double v, const char* fmt = "%.6g") { return std::isfinite(v) ? Fmt(fmt, v) : "null"; }

std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;  // host names have none; drop them
    o += c;
  }
  return o + "\"";
}

// The value of counter/gauge `name` (no peer) a member reported, or NaN.
double MemberMetric(MemberStatus::Reader m, const char* name) {
  for (auto s : m.getMetrics()) {
    if (s.getPeerRank() == -1 && s.getKind() != wire::capnp::MetricKind::QUANTILE && s.getName() == name) {
      return s.getValue();
    }
  }
  return NAN;
}

// A quantile of `name` about this member itself (p50/p99), or NaN.
double MemberQuantile(MemberStatus::Reader m, const char* name, double q) {
  for (auto s : m.getMetrics()) {
    if (s.getKind() == wire::capnp::MetricKind::QUANTILE && s.getName() == name && s.getQuantile() == q &&
        s.getPeerRank() == -1) {
      return s.getValue();
    }
  }
  return NAN;
}

std::string Human(double bytes) {
  if (!std::isfinite(bytes)) return "-";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return Fmt(u == 0 ? "%.0f" : "%.1f", bytes) + " " + units[u];
}

std::string Ms(double s) { return std::isfinite(s) ? Fmt("%.2f ms", s * 1e3) : "-"; }

struct Totals {
  double steps_per_sec = 0, samples_per_sec = 0;
};

Totals Sum(JobStatus::Reader js) {
  Totals t;
  for (auto m : js.getMembers()) {
    if (m.getRole() != wire::capnp::Role::WORKER || m.getFinished()) continue;
    t.steps_per_sec += m.getStepsPerSec();
    t.samples_per_sec += m.getSamplesPerSec();
  }
  return t;
}

Result<std::string> Endpoint(const std::string& address) {
  std::string a = address.rfind("tcp://", 0) == 0 ? address.substr(6) : address;
  const size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size()) {
    return Status::InvalidArgument("ADDRESS '" + address + "': expected host:port");
  }
  const std::string port = a.substr(colon + 1);
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (*end != '\0' || p <= 0 || p > 65535) return Status::InvalidArgument("ADDRESS '" + address + "': bad port '" + port + "'");
  return "tcp://" + a;
}

// Reads one monitor event; returns the event id (0 when none could be read).
uint16_t ReadMonitorEvent(void* mon) {
  zmq_msg_t first;
  zmq_msg_init(&first);
  if (zmq_msg_recv(&first, mon, ZMQ_DONTWAIT) < 0) {
    zmq_msg_close(&first);
    return 0;
  }
  uint16_t event = 0;
  if (zmq_msg_size(&first) >= 2) std::memcpy(&event, zmq_msg_data(&first), 2);
  const bool more = zmq_msg_more(&first);
  zmq_msg_close(&first);
  if (more) {  // the endpoint frame
    zmq_msg_t second;
    zmq_msg_init(&second);
    zmq_msg_recv(&second, mon, 0);
    zmq_msg_close(&second);
  }
  return event;
}

struct Answer {
  int exit_code = 0;
  std::string error;
};

// Sends the status request and waits for the answer, watching the handshake.
Answer Ask(const std::string& endpoint, const std::string& key_file, bool curve, double timeout_s, bool json) {
  auto ctx = wire::Context::Create();
  if (!ctx.ok()) return {kExitFailure, ctx.status().ToString()};
  if (!key_file.empty()) {
    auto keys = wire::ReadCurveKeyFile(key_file);
    if (!keys.ok()) return {kExitConfig, keys.status().WithContext("--key_file=" + key_file).ToString()};
    Status st = curve ? (*ctx)->EnableCurve(*keys) : (*ctx)->EnableMac(*keys);
    if (!st.ok()) return {kExitConfig, st.WithContext(curve ? "enabling CURVE" : "enabling --auth=mac").ToString()};
  }
  wire::SocketOptions so;
  so.stamp_sender = true;
  so.role = wire::Role::TOOL;
  so.rank = -1;
  so.linger_ms = 0;
  auto sock = wire::Socket::Create(*ctx, wire::SocketType::kDealer, so);
  if (!sock.ok()) return {kExitFailure, sock.status().ToString()};
  const char* mon_ep = "inproc://tessera-status-monitor";
  if (zmq_socket_monitor((*sock)->raw(), mon_ep,
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
    return {kExitFailure, std::string("zmq_socket_monitor: ") + zmq_strerror(zmq_errno())};
  }
  void* mon = zmq_socket((*ctx)->raw(), ZMQ_PAIR);
  int zero = 0;
  zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof(zero));
  zmq_connect(mon, mon_ep);
  struct MonCloser {
    void* m;
    ~MonCloser() { zmq_close(m); }
  } closer{mon};

  Status st = (*sock)->Connect(endpoint);
  if (!st.ok()) return {kExitConfig, st.WithContext("connecting to " + endpoint).ToString()};
  wire::OutMessage req(wire::Op::STATUS);
  req.SetRequestId(1);
  st = (*sock)->Send(std::move(req));
  if (!st.ok()) return {kExitPeerFailure, st.WithContext("sending the status request").ToString()};

  const auto deadline = Clock::now() + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(timeout_s));
  while (Clock::now() < deadline) {
    zmq_pollitem_t items[2] = {{(*sock)->raw(), 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (zmq_poll(items, 2, static_cast<long>(std::max<int64_t>(1, std::min<int64_t>(left, 100)))) < 0) continue;
    if (items[1].revents & ZMQ_POLLIN) {
      const uint16_t ev = ReadMonitorEvent(mon);
      if (ev != 0) {
        std::string why = key_file.empty()
                              ? "the coordinator at " + endpoint +
                                    " refused the connection: the job uses CURVE; pass its key file with --key_file "
                                    "(or --job_dir) and --auth=curve"
                              : "the coordinator at " + endpoint + " refused the connection with " + key_file +
                                    (curve ? " (a different job's key, or the job does not use CURVE)"
                                           : " (the job uses --auth=curve: pass --auth=curve)");
        return {kExitConfig, why};
      }
    }
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    auto msg = (*sock)->TryRecv();
    if (!msg.ok()) continue;  // malformed or nothing: keep waiting for the real answer
    if (msg->request_id() != 1) continue;
    if (msg->op() == wire::Op::ERROR) {
      return {kExitConfig, wire::StatusFromError(*msg).WithContext("the coordinator refused the request").ToString()};
    }
    if (msg->op() != wire::Op::STATUS || !msg->header().getBody().isStatus()) {
      return {kExitFailure, "unexpected " + wire::OpName(msg->op()) + " from the coordinator"};
    }
    auto js = msg->header().getBody().getStatus();
    const uint64_t job_id = msg->header().getJobId();
    const std::string out = json ? StatusJson(js, job_id) + "\n" : FormatStatus(js, job_id);
    std::fputs(out.c_str(), stdout);
    return {kExitOk, ""};
  }
  return {kExitPeerFailure, "no answer from a coordinator at " + endpoint + " within " + Fmt("%g", timeout_s) +
                                " s (is the job running, and is this its coordinator's address? A job with a key file needs it: "
                                "--key_file or --job_dir; a refused key is logged by the coordinator)"};
}

}  // namespace

std::string FormatStatus(JobStatus::Reader js, uint64_t job_id) {
  std::string o;
  o += "job " + std::to_string(job_id) + ": " + std::to_string(js.getNumServers()) + " servers, " +
       std::to_string(js.getNumWorkers()) + " workers, " +
       (js.getTrainingStarted() ? "training" : "starting (not everyone has joined yet)") + ", up " +
       Fmt("%.1f", static_cast<double>(js.getUptimeMs()) / 1e3) + " s\n";
  o += "steps: min " + std::to_string(js.getMinStep()) + ", max " + std::to_string(js.getMaxStep());
  if (js.getSlowestWorkerRank() >= 0) o += ", slowest worker: rank " + std::to_string(js.getSlowestWorkerRank());
  o += "\n";
  o += "last checkpoint: " + (js.getLastCheckpointStep() < 0 ? std::string("none") : "step " + std::to_string(js.getLastCheckpointStep())) + "\n";
  const Totals t = Sum(js);
  o += "throughput: " + Fmt("%.1f", t.steps_per_sec) + " steps/s, " + Fmt("%.0f", t.samples_per_sec) +
       " samples/s (workers together)\n\n";
  char line[256];
  std::snprintf(line, sizeof(line), "%-7s %4s  %-16s %7s %9s %9s %10s %10s %10s  %s\n", "role", "rank", "host", "step",
                "heartbeat", "steps/s", "loss", "memory", "p50/p99", "state");
  o += line;
  for (auto m : js.getMembers()) {
    const bool worker = m.getRole() == wire::capnp::Role::WORKER;
    std::string lat;
    if (worker) {
      // The worker's median round trip over the servers it talks to.
      double worst50 = NAN;
      for (auto s : m.getMetrics()) {
        if (s.getKind() == wire::capnp::MetricKind::QUANTILE && s.getName() == "request_rtt_seconds" &&
            s.getQuantile() == 0.5 && !(s.getValue() <= worst50)) {
          worst50 = s.getValue();
        }
      }
      lat = std::isfinite(worst50) ? Ms(worst50) + " rtt" : "-";
    } else {
      const double p50 = MemberQuantile(m, "request_seconds", 0.5), p99 = MemberQuantile(m, "request_seconds", 0.99);
      lat = std::isfinite(p50) ? Fmt("%.2g", p50 * 1e3) + "/" + Fmt("%.2g", p99 * 1e3) + " ms" : "-";
    }
    const double loss = MemberMetric(m, "loss");
    const std::string state = m.getFinished() ? "finished" : m.getHost().size() == 0 ? "not registered" : "running";
    std::snprintf(line, sizeof(line), "%-7s %4d  %-16.16s %7" PRId64 " %7.1f s %9s %10s %10s %10s  %s\n",
                  RoleName(m.getRole()), m.getRank(), m.getHost().cStr(), m.getStep(),
                  static_cast<double>(m.getLastHeartbeatMsAgo()) / 1e3,
                  worker ? Fmt("%.1f", m.getStepsPerSec()).c_str() : "-",
                  worker && std::isfinite(loss) ? Fmt("%.4f", loss).c_str() : "-",
                  Human(MemberMetric(m, "rss_bytes")).c_str(), lat.c_str(), state.c_str());
    o += line;
  }
  return o;
}

std::string StatusJson(JobStatus::Reader js, uint64_t job_id) {
  const Totals t = Sum(js);
  std::string j = "{\"job_id\":" + std::to_string(job_id);
  j += ",\"servers\":" + std::to_string(js.getNumServers()) + ",\"workers\":" + std::to_string(js.getNumWorkers());
  j += std::string(",\"training\":") + (js.getTrainingStarted() ? "true" : "false");
  j += ",\"uptime_s\":" + JsonNum(static_cast<double>(js.getUptimeMs()) / 1e3, "%.3f");
  j += ",\"min_step\":" + std::to_string(js.getMinStep()) + ",\"max_step\":" + std::to_string(js.getMaxStep());
  j += ",\"slowest_worker_rank\":" + std::to_string(js.getSlowestWorkerRank());
  j += ",\"last_checkpoint_step\":" + std::to_string(js.getLastCheckpointStep());
  j += ",\"steps_per_sec\":" + JsonNum(t.steps_per_sec, "%.3f") + ",\"samples_per_sec\":" + JsonNum(t.samples_per_sec, "%.1f");
  j += ",\"members\":[";
  bool first = true;
  for (auto m : js.getMembers()) {
    j += first ? "{" : ",{";
    first = false;
    j += "\"role\":" + JsonStr(RoleName(m.getRole())) + ",\"rank\":" + std::to_string(m.getRank());
    j += ",\"host\":" + JsonStr(m.getHost().cStr()) + ",\"step\":" + std::to_string(m.getStep());
    j += ",\"heartbeat_age_s\":" + JsonNum(static_cast<double>(m.getLastHeartbeatMsAgo()) / 1e3, "%.3f");
    j += std::string(",\"finished\":") + (m.getFinished() ? "true" : "false");
    j += ",\"steps_per_sec\":" + JsonNum(m.getStepsPerSec(), "%.3f");
    j += ",\"samples_per_sec\":" + JsonNum(m.getSamplesPerSec(), "%.1f");
    j += ",\"metrics_age_s\":" + JsonNum(static_cast<double>(m.getMetricsAgeMs()) / 1e3, "%.3f");
    j += ",\"metrics\":{";
    bool f2 = true;
    for (auto s : m.getMetrics()) {
      std::string key = s.getName().cStr();
      if (s.getKind() == wire::capnp::MetricKind::QUANTILE) key += s.getQuantile() == 0.5 ? "_p50" : s.getQuantile() == 0.99 ? "_p99" : "_q";
      if (s.getPeerRank() >= 0) key += "{server=" + std::to_string(s.getPeerRank()) + "}";
      j += (f2 ? "" : ",") + JsonStr(key) + ":" + JsonNum(s.getValue(), "%.9g");
      f2 = false;
    }
    j += "}}";
  }
  return j + "]}";
}

int StatusMain(int argc, char** argv) {
  std::string address, key_file, job_dir, auth = "mac";
  bool json = false;
  double timeout_s = 5;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& name, std::string* out) {
      if (a.rfind(name + "=", 0) == 0) {
        *out = a.substr(name.size() + 1);
        return true;
      }
      if (a == name && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      return false;
    };
    std::string v;
    if (a == "-h" || a == "--help" || a == "help") return Usage(stdout);
    if (a == "--json") {
      json = true;
    } else if (value("--timeout_s", &v)) {
      char* end = nullptr;
      timeout_s = std::strtod(v.c_str(), &end);
      if (*end != '\0' || !(timeout_s > 0)) {
        std::fprintf(stderr, "tessera status: --timeout_s=%s: expected a positive number of seconds\n", v.c_str());
        return kExitConfig;
      }
    } else if (value("--key_file", &key_file) || value("--job_dir", &job_dir)) {
    } else if (value("--auth", &auth)) {
      if (auth != "mac" && auth != "curve") {
        std::fprintf(stderr, "tessera status: --auth=%s: expected mac or curve\n", auth.c_str());
        return kExitConfig;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "tessera status: unknown flag %s\n", a.c_str());
      return Usage(stderr);
    } else if (address.empty()) {
      address = a;
    } else {
      std::fprintf(stderr, "tessera status: one ADDRESS only (got '%s' and '%s')\n", address.c_str(), a.c_str());
      return Usage(stderr);
    }
  }
  if (address.empty()) return Usage(stderr);
  auto ep = Endpoint(address);
  if (!ep.ok()) {
    std::fprintf(stderr, "tessera status: %s\n", ep.status().ToString().c_str());
    return kExitConfig;
  }
  if (key_file.empty() && !job_dir.empty()) key_file = job_dir + "/job.key";
  if (key_file.empty()) {
    const char* env = std::getenv(kAuthKeyFileEnv);
    if (env != nullptr) key_file = env;
  }
  Answer a = Ask(*ep, key_file, auth == "curve", timeout_s, json);
  if (a.exit_code != 0) std::fprintf(stderr, "tessera status: %s\n", a.error.c_str());
  return a.exit_code;
}

}  // namespace tessera::launch
