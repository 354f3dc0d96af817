// A real job (`tessera launch`, 1 coordinator + 2 servers + 2 workers, CURVE on as
// launched jobs have it) observed from outside while it trains: GET /metrics scraped
// over HTTP on 127.0.0.1 and parsed strictly, bad requests sent to the live endpoint,
// `tessera status` with and without the job's key, and the rank_metrics lines of
// --metrics_out (docs/metrics.md).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "tests/launch/job_harness.h"
#include "tests/testutil/testutil.h"

namespace tessera {
namespace {

using testing::BackgroundJob;
using testing::RunCommand;
using testing::SourceDir;
using testing::TesseraBinary;

std::string Http(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[8192];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

// Parses a Prometheus text exposition strictly: every line is a # HELP, a # TYPE or
// `name{label="value",...} value`; every sample belongs to a family with a TYPE (a
// summary's _count and _sum belong to it); no family is declared twice. Returns the
// samples keyed by their full series text (`name{labels}`); failures go to *error.
std::map<std::string, double> ParseExposition(const std::string& body, std::string* error) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|summary|histogram|untyped)$)");
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? (\S+)$)");
  std::map<std::string, std::string> types;
  std::set<std::string> helps;
  std::map<std::string, double> out;
  size_t pos = 0;
  int n = 0;
  while (pos < body.size()) {
    size_t eol = body.find('\n', pos);
    if (eol == std::string::npos) {
      *error = "the last line has no newline";
      return out;
    }
    const std::string line = body.substr(pos, eol - pos);
    pos = eol + 1;
    ++n;
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      if (!helps.insert(m[1]).second) *error += "HELP twice for " + m[1].str() + "\n";
      continue;
    }
    if (std::regex_match(line, m, kType)) {
      if (types.count(m[1])) *error += "TYPE twice for " + m[1].str() + "\n";
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      *error += "line " + std::to_string(n) + " is not a sample: " + line + "\n";
      continue;
    }
    std::string name = m[1], family = name;
    for (const char* sfx : {"_count", "_sum"}) {
      const std::string s = sfx;
      if (!types.count(family) && name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0 &&
          types.count(name.substr(0, name.size() - s.size())) &&
          types[name.substr(0, name.size() - s.size())] == "summary") {
        family = name.substr(0, name.size() - s.size());
      }
    }
    if (!types.count(family)) *error += "no TYPE before " + name + "\n";
    const std::string v = m[4];
    char* end = nullptr;
    double value = std::strtod(v.c_str(), &end);
    if (v == "NaN") value = NAN;
    else if (v == "+Inf") value = INFINITY;
    else if (v == "-Inf") value = -INFINITY;
    else if (*end != '\0') *error += "bad value in: " + line + "\n";
    const std::string series = name + m[2].str();
    if (out.count(series)) *error += "series twice: " + series + "\n";
    out[series] = value;
  }
  return out;
}

struct Scrape {
  std::map<std::string, double> samples;
  std::string error;
  std::string raw;
};

Scrape ScrapeMetrics(int port) {
  Scrape s;
  s.raw = Http(port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  const size_t body = s.raw.find("\r\n\r\n");
  if (s.raw.rfind("HTTP/1.1 200 OK\r\n", 0) != 0 || body == std::string::npos) {
    s.error = "not a 200 response: " + s.raw.substr(0, 200);
    return s;
  }
  s.samples = ParseExposition(s.raw.substr(body + 4), &s.error);
  return s;
}

double Get(const Scrape& s, const std::string& series) {
  auto it = s.samples.find(series);
  return it == s.samples.end() ? NAN : it->second;
}

std::string W(int rank) { return "{role=\"worker\",rank=\"" + std::to_string(rank) + "\"}"; }

TEST(ObserveJob, EndpointStatusAndRankLinesOfARunningJob) {
  unsetenv("TESSERA_AUTH_KEY_FILE");
  testing::TempDir dir;
  const int coord_port = testing::FreeTcpPort();
  int metrics_port = testing::FreeTcpPort();
  while (metrics_port == coord_port) metrics_port = testing::FreeTcpPort();
  const std::string metrics_file = dir.path() + "/metrics.jsonl";
  // Long enough to be observed; the test stops it (the harness kills the session).
  BackgroundJob job(TesseraBinary() + " launch --servers 2 --workers 2 --grace_s 2 --coordinator_port " +
                    std::to_string(coord_port) + " --metrics_port=" + std::to_string(metrics_port) +
                    " --metrics_out=" + metrics_file + " --data=" + SourceDir() +
                    "/data/mnist --train_limit=2000 --test_limit=100 --hidden=32 --batch_size=16 --steps=1000000 "
                    "--log_every=0");
  ASSERT_TRUE(job.WaitForOutput("metrics at http://127.0.0.1:" + std::to_string(metrics_port), std::chrono::seconds(60)))
      << job.Output();

  // Wait until both workers have reported steps (heartbeats carry metrics once a second).
  Scrape first;
  for (int i = 0; i < 200; ++i) {
    first = ScrapeMetrics(metrics_port);
    // Every rank's first report with requests in it (each server reports on its own
    // heartbeat, so one server's metrics may arrive a beat after the other's).
    bool servers_reported = true;
    for (int r : {1, 2}) {
      servers_reported = servers_reported && !std::isnan(Get(first, "tessera_request_seconds{role=\"server\",rank=\"" +
                                                                        std::to_string(r) + "\",quantile=\"0.5\"}"));
    }
    if (Get(first, "tessera_steps_total" + W(3)) > 0 && Get(first, "tessera_steps_total" + W(4)) > 0 &&
        servers_reported) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_EQ(first.error, "") << first.raw;
  for (int r : {3, 4}) {
    EXPECT_GT(Get(first, "tessera_steps_total" + W(r)), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_samples_total" + W(r)), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_bytes_pushed_total" + W(r)), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_bytes_pulled_total" + W(r)), 0) << first.raw;
    // Every process is on this host: fc1's 100 KB gradients and values (above
    // --shm_min_bytes) went through shared memory, by default.
    EXPECT_GT(Get(first, "tessera_shm_bytes_sent_total" + W(r)), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_shm_bytes_received_total" + W(r)), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_request_rtt_seconds{role=\"worker\",rank=\"" + std::to_string(r) +
                             "\",server=\"2\",quantile=\"0.99\"}"),
              0)
        << first.raw;
    EXPECT_FALSE(std::isnan(Get(first, "tessera_loss" + W(r)))) << first.raw;
  }
  for (int r : {1, 2}) {
    const std::string l = "{role=\"server\",rank=\"" + std::to_string(r) + "\"";
    EXPECT_GT(Get(first, "tessera_request_seconds" + l + ",quantile=\"0.5\"}"), 0) << first.raw;
    EXPECT_GE(Get(first, "tessera_request_seconds" + l + ",quantile=\"0.99\"}"),
              Get(first, "tessera_request_seconds" + l + ",quantile=\"0.5\"}"))
        << first.raw;
    EXPECT_GT(Get(first, "tessera_requests_total" + l + "}"), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_optimizer_seconds_count" + l + "}"), 0) << first.raw;
    EXPECT_GT(Get(first, "tessera_rss_bytes" + l + "}"), 1e6) << first.raw;
  }
  EXPECT_GT(Get(first, "tessera_rss_bytes{role=\"coordinator\",rank=\"0\"}"), 1e6) << first.raw;
  EXPECT_EQ(Get(first, "tessera_job_members_registered"), 4) << first.raw;

  // A later scrape: the step counters moved on (polled: under a sanitizer on a loaded
  // machine a step can take seconds).
  Scrape second;
  for (int i = 0; i < 120; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    second = ScrapeMetrics(metrics_port);
    if (!second.error.empty()) break;
    if (Get(second, "tessera_steps_total" + W(3)) > Get(first, "tessera_steps_total" + W(3)) &&
        Get(second, "tessera_steps_total" + W(4)) > Get(first, "tessera_steps_total" + W(4))) {
      break;
    }
  }
  ASSERT_EQ(second.error, "") << second.raw;
  for (int r : {3, 4}) {
    EXPECT_GT(Get(second, "tessera_steps_total" + W(r)), Get(first, "tessera_steps_total" + W(r))) << second.raw;
    EXPECT_GT(Get(second, "tessera_steps_per_second" + W(r)), 0) << second.raw;
  }
  EXPECT_GE(Get(second, "tessera_job_max_step"), Get(second, "tessera_job_min_step"));

  // Bad requests get answers, not a dead endpoint.
  EXPECT_EQ(Http(metrics_port, "GET /other HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Http(metrics_port, "\x01\x02 garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Http(metrics_port, "DELETE /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(ScrapeMetrics(metrics_port).error, "");

  // `tessera status` with the job's key (the launcher's key file, named in the log).
  std::smatch m;
  const std::string out = job.Output();
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(\(key file ([^)]+)\))"))) << out;
  const std::string key = m[1];
  const std::string addr = "127.0.0.1:" + std::to_string(coord_port);
  auto st = RunCommand(TesseraBinary() + " status " + addr + " --key_file=" + key, 30);
  EXPECT_EQ(st.exit_code, 0) << st.output;
  EXPECT_NE(st.output.find("2 servers, 2 workers, training"), std::string::npos) << st.output;
  EXPECT_TRUE(std::regex_search(st.output, std::regex(R"(slowest worker: rank [34])"))) << st.output;
  EXPECT_TRUE(std::regex_search(st.output, std::regex(R"(throughput: [0-9.]+ steps/s)"))) << st.output;
  EXPECT_TRUE(std::regex_search(st.output, std::regex(R"(\nworker +3 .* running)"))) << st.output;
  EXPECT_TRUE(std::regex_search(st.output, std::regex(R"(\nserver +1 .* running)"))) << st.output;

  auto js = RunCommand(TesseraBinary() + " status " + addr + " --json --key_file=" + key, 30);
  EXPECT_EQ(js.exit_code, 0) << js.output;
  auto count = [](const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(js.output, "\"role\":\"worker\""), 2u) << js.output;
  EXPECT_EQ(count(js.output, "\"role\":\"server\""), 2u) << js.output;
  ASSERT_TRUE(std::regex_search(js.output, m, std::regex(R"re("max_step":([0-9]+))re"))) << js.output;
  EXPECT_GT(std::stoll(m[1]), 0);
  EXPECT_NE(js.output.find("\"request_rtt_seconds_p50{server=1}\":"), std::string::npos) << js.output;

  // Without the key an --auth=mac coordinator (the launcher's default) does not answer at
  // all (a stranger learns nothing); status gives up and names the key flags.
  auto refused = RunCommand(TesseraBinary() + " status " + addr + " --timeout_s=2", 30);
  EXPECT_EQ(refused.exit_code, 3) << refused.output;
  EXPECT_NE(refused.output.find("--key_file or --job_dir"), std::string::npos) << refused.output;
  // With the key but CURVE, the mechanisms differ and the handshake fails: named at once.
  auto curve = RunCommand(TesseraBinary() + " status " + addr + " --key_file=" + key + " --auth=curve --timeout_s=10", 30);
  EXPECT_EQ(curve.exit_code, 2) << curve.output;
  EXPECT_NE(curve.output.find("refused the connection"), std::string::npos) << curve.output;

  // Nothing listening: a clear error after the timeout.
  auto nobody = RunCommand(TesseraBinary() + " status 127.0.0.1:" + std::to_string(testing::FreeTcpPort()) +
                               " --timeout_s=1",
                           30);
  EXPECT_EQ(nobody.exit_code, 3) << nobody.output;
  EXPECT_NE(nobody.output.find("no answer from a coordinator at tcp://127.0.0.1:"), std::string::npos) << nobody.output;

  // The coordinator's rank lines sit in worker 0's metrics file next to its step lines.
  std::ifstream in(metrics_file);
  std::set<std::string> ranks;
  int steps = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("{\"event\":\"step\"", 0) == 0) ++steps;
    if (std::regex_search(line, m, std::regex(R"re(^\{"event":"rank_metrics","role":"(\w+)","rank":(\d+),)re"))) {
      ranks.insert(m[1].str() + m[2].str());
    }
    ASSERT_EQ(line.back(), '}') << "a torn line: " << line;
  }
  EXPECT_GT(steps, 0);
  EXPECT_EQ(ranks, (std::set<std::string>{"coordinator0", "server1", "server2", "worker3", "worker4"}));
}

// Issue 18 item 2: a sparse job under a table memory limit, an expiry and admission
// reports its tables' resident rows and bytes and the policy's counts on /metrics.
TEST(ObserveJob, SparseTablePolicyCountsReachMetrics) {
  unsetenv("TESSERA_AUTH_KEY_FILE");
  testing::TempDir dir;
  const int coord_port = testing::FreeTcpPort();
  int metrics_port = testing::FreeTcpPort();
  while (metrics_port == coord_port) metrics_port = testing::FreeTcpPort();
  BackgroundJob job(TesseraBinary() + " launch --servers 1 --workers 1 --grace_s 2 --coordinator_port " +
                    std::to_string(coord_port) + " --metrics_port=" + std::to_string(metrics_port) +
                    " --metrics_out=" + dir.path() + "/metrics.jsonl --model=widedeep --data=" + SourceDir() +
                    "/data/a9a --test_limit=100 --batch_size=32 --hidden=8 --embed_dim=4 --steps=1000000 "
                    "--log_every=0 --table_memory_limit=16K --row_expiry_steps=2 --min_key_count=2 "
                    "--min_key_count_sketch_width=1024");
  ASSERT_TRUE(job.WaitForOutput("metrics at http://127.0.0.1:" + std::to_string(metrics_port), std::chrono::seconds(60)))
      << job.Output();
  const std::string l = "{role=\"server\",rank=\"1\"}";
  // Per table: widedeep's wide weights overflow the 16 KiB limit, its embedding rows expire.
  const auto t = [](const std::string& table) {
    return "{role=\"server\",rank=\"1\",table=\"" + table + "\"}";
  };
  // Waits for the per-table counts too: the server's totals can turn positive through
  // the wide table's expiries before an embedding row has expired (seen under TSan).
  Scrape s;
  for (int i = 0; i < 200; ++i) {
    s = ScrapeMetrics(metrics_port);
    if (Get(s, "tessera_sparse_rows_evicted_total" + l) > 0 && Get(s, "tessera_sparse_rows_expired_total" + l) > 0 &&
        Get(s, "tessera_sparse_table_rows_expired_total" + t("deep.embedding")) > 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_EQ(s.error, "") << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_rows_evicted_total" + l), 0) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_rows_expired_total" + l), 0) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_rows_not_admitted_total" + l), 0) << s.raw;
  const double rows = Get(s, "tessera_sparse_resident_rows" + l);
  EXPECT_GT(rows, 0) << s.raw;
  EXPECT_GE(Get(s, "tessera_sparse_rows_created_total" + l), rows) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_resident_bytes" + l), rows) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_table_rows_evicted_total" + t("wide.weight")), 0) << s.raw;
  EXPECT_LE(Get(s, "tessera_sparse_table_resident_bytes" + t("wide.weight")), 16384) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_table_rows_expired_total" + t("deep.embedding")), 0) << s.raw;
  EXPECT_GT(Get(s, "tessera_sparse_table_resident_rows" + t("deep.embedding")), 0) << s.raw;
}

TEST(ObserveStatus, BadAddressIsAConfigError) {
  auto r = RunCommand(TesseraBinary() + " status nowhere", 30);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("ADDRESS 'nowhere': expected host:port"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
