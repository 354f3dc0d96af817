// The metrics pieces on their own: the registry's quantiles, the wire validation, the
// coordinator's store (rates, Prometheus text, JSON lines) and the HTTP endpoint over
// real loopback sockets with good and bad requests.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <capnp/message.h>

#include <cmath>
#include <string>
#include <thread>

#include "common/metrics_registry.h"
#include "coordinator/metrics_http.h"
#include "coordinator/metrics_store.h"
#include "tests/testutil/testutil.h"
#include "wire/codec.h"
#include "wire/message.h"
#include "wire/metrics_wire.h"

namespace tessera {
namespace {

using metrics::Kind;
using metrics::Sample;

TEST(Latency, QuantilesAreWithinOneBucketOfTheTruth) {
  metrics::Latency l;
  // 1..1000 ms, uniform: p50 = 500 ms, p99 = 990 ms.
  for (int i = 1; i <= 1000; ++i) l.Record(i * 1e-3);
  auto [p50, p99] = l.TakeWindowQuantiles();
  EXPECT_GE(p50, 0.500);
  EXPECT_LE(p50, 0.500 * 1.19);
  EXPECT_GE(p99, 0.990);
  EXPECT_LE(p99, 0.990 * 1.19);
  EXPECT_EQ(l.count(), 1000u);
  EXPECT_NEAR(l.sum_seconds(), 500.5, 1e-3);
}

TEST(Latency, AQuietWindowRepeatsTheLastQuantilesAndANewWindowReplacesThem) {
  metrics::Latency l;
  EXPECT_EQ(l.TakeWindowQuantiles().first, -1) << "nothing recorded yet";
  for (int i = 0; i < 100; ++i) l.Record(0.002);
  const double first = l.TakeWindowQuantiles().first;
  EXPECT_EQ(l.TakeWindowQuantiles().first, first);
  for (int i = 0; i < 100; ++i) l.Record(0.200);
  const double second = l.TakeWindowQuantiles().first;
  EXPECT_GT(second, 0.19) << "the old window's 2 ms values must not count any more";
  EXPECT_EQ(l.count(), 200u);
}

TEST(Registry, SnapshotHasCountersGaugesAndSummaries) {
  metrics::Registry r;
  r.GetCounter("steps_total").Add(3);
  r.GetCounter("steps_total").Add(2);
  r.GetGauge("loss").Set(0.25);
  r.GetLatency("request_rtt_seconds", 2).Record(0.001);
  auto snap = r.Snapshot();
  EXPECT_EQ(FindSample(snap, "steps_total"), 5);
  EXPECT_EQ(FindSample(snap, "loss"), 0.25);
  int quantiles = 0;
  for (const Sample& s : snap) {
    if (s.name == "request_rtt_seconds") {
      EXPECT_EQ(s.kind, Kind::kQuantile);
      EXPECT_EQ(s.peer_rank, 2);
      ++quantiles;
    }
  }
  EXPECT_EQ(quantiles, 2);
  EXPECT_GT(metrics::ReadRssBytes(), 1u << 20) << "a test process holds more than 1 MiB";
}

TEST(MetricsWire, InvalidSamplesAreDroppedNotTrusted) {
  ::capnp::MallocMessageBuilder mb;
  auto hb = mb.initRoot<wire::capnp::Heartbeat>();
  auto list = hb.initMetrics(5);
  list[0].setName("steps_total");
  list[0].setValue(7);
  list[1].setName("bad name{x=\"1\"}");  // would inject labels into the exposition
  list[2].setName("loss");
  list[2].setValue(NAN);
  list[3].setName("request_seconds");
  list[3].setKind(wire::capnp::MetricKind::QUANTILE);
  list[3].setQuantile(1.5);
  list[4].setName(std::string(65, 'a'));
  size_t dropped = 0;
  auto got = wire::SamplesFromWire(hb.asReader().getMetrics(), &dropped);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].name, "steps_total");
  EXPECT_EQ(got[0].value, 7);
  EXPECT_EQ(dropped, 4u);
}

// A sparse table's label travels and reaches the exposition; one that could inject
// labels or break the line is dropped with its sample.
TEST(MetricsWire, TableLabelsTravelAndBadOnesAreDropped) {
  ::capnp::MallocMessageBuilder mb;
  auto hb = mb.initRoot<wire::capnp::Heartbeat>();
  wire::SamplesToWire({{"sparse_table_resident_rows", Kind::kGauge, 5, 0, -1, "dlrm.emb.C1"},
                       {"sparse_table_resident_rows", Kind::kGauge, 6, 0, -1, "x\",evil=\"1"},
                       {"sparse_table_resident_rows", Kind::kGauge, 7, 0, -1, std::string(129, 'a')}},
                      hb.initMetrics(3));
  size_t dropped = 0;
  auto got = wire::SamplesFromWire(hb.asReader().getMetrics(), &dropped);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].table, "dlrm.emb.C1");
  EXPECT_EQ(dropped, 2u);
  MetricsStore st;
  st.Update("server", 1, got, Clock::now());
  const std::string t = st.PrometheusText();
  EXPECT_NE(t.find("tessera_sparse_table_resident_rows{role=\"server\",rank=\"1\",table=\"dlrm.emb.C1\"} 5\n"),
            std::string::npos)
      << t;
}

// Only a status request may leave the job id out (`tessera status` cannot know it).
TEST(MetricsWire, StatusWithoutJobIdIsAcceptedOtherOpsAreNot) {
  wire::DecodeOptions o;
  o.expected_job_id = 77;
  auto decode = [&](wire::OutMessage m) {
    auto h = m.EncodeHeader();
    return wire::DecodeCopy(h, {}, o);
  };
  EXPECT_OK(decode(wire::OutMessage(wire::Op::STATUS)).status());
  wire::OutMessage hb(wire::Op::HEARTBEAT);
  auto b = hb.header().getBody().initHeartbeat();
  wire::SamplesToWire({{"steps_total", Kind::kCounter, 9, 0, -1}}, b.initMetrics(1));
  auto refused = decode(std::move(hb));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().ToString().find("job id 0 != ours 77"), std::string::npos);

  o.expected_job_id = 0;
  wire::OutMessage hb2(wire::Op::HEARTBEAT);
  auto b2 = hb2.header().getBody().initHeartbeat();
  wire::SamplesToWire({{"steps_total", Kind::kCounter, 9, 0, -1}}, b2.initMetrics(1));
  auto ok = decode(std::move(hb2));
  ASSERT_OK(ok.status());
  auto got = wire::SamplesFromWire(ok->header().getBody().getHeartbeat().getMetrics());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, 9);
}

TEST(MetricsStore, RatesComeFromTwoReports) {
  MetricsStore st;
  auto t0 = Clock::now();
  st.Update("worker", 3, {{"steps_total", Kind::kCounter, 10, 0, -1}, {"samples_total", Kind::kCounter, 640, 0, -1}}, t0);
  EXPECT_EQ(st.Get(3).steps_per_sec, 0);
  st.Update("worker", 3, {{"steps_total", Kind::kCounter, 30, 0, -1}, {"samples_total", Kind::kCounter, 1920, 0, -1}},
            t0 + std::chrono::seconds(2));
  EXPECT_DOUBLE_EQ(st.Get(3).steps_per_sec, 10);
  EXPECT_DOUBLE_EQ(st.Get(3).samples_per_sec, 640);
}

TEST(MetricsStore, SlowStepsKeepASteadyRateOverTheWindow) {
  // One step per 2 s, heartbeats once a second: every other report repeats the count.
  MetricsStore st;
  auto t0 = Clock::now();
  auto report = [&](int s, double steps) {
    st.Update("worker", 4, {{"steps_total", Kind::kCounter, steps, 0, -1}, {"samples_total", Kind::kCounter, 32 * steps, 0, -1}},
              t0 + std::chrono::seconds(s));
  };
  for (int s = 0; s <= 30; ++s) {
    report(s, s / 2);
    if (s >= 2) {
      EXPECT_GT(st.Get(4).steps_per_sec, 0) << "at " << s << " s";
    }
  }
  // Past the window the rate is measured over 10-11 s: about 0.5 steps/s.
  EXPECT_NEAR(st.Get(4).steps_per_sec, 0.5, 0.06);
  EXPECT_NEAR(st.Get(4).samples_per_sec, 16, 2);
  // A stalled worker decays to 0 once the window has passed.
  for (int s = 31; s <= 42; ++s) report(s, 15);
  EXPECT_EQ(st.Get(4).steps_per_sec, 0);
  // A restarted worker (counter back to 0) starts a new window rather than a negative rate.
  report(43, 0);
  EXPECT_EQ(st.Get(4).steps_per_sec, 0);
  report(45, 4);
  EXPECT_DOUBLE_EQ(st.Get(4).steps_per_sec, 2);
}

TEST(MetricsStore, PrometheusTextHasHelpTypeAndLabels) {
  MetricsStore st;
  auto now = Clock::now();
  st.Update("worker", 3,
            {{"steps_total", Kind::kCounter, 12, 0, -1},
             {"request_rtt_seconds", Kind::kQuantile, 0.002, 0.5, 1},
             {"request_rtt_seconds", Kind::kQuantile, 0.004, 0.99, 1},
             {"request_rtt_seconds_count", Kind::kCounter, 40, 0, 1},
             {"request_rtt_seconds_sum", Kind::kCounter, 0.1, 0, 1}},
            now);
  st.Update("server", 1, {{"request_seconds", Kind::kQuantile, 0.0001, 0.5, -1}}, now);
  st.SetJobGauge("min_step", 12);
  const std::string t = st.PrometheusText();
  EXPECT_NE(t.find("# TYPE tessera_steps_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("tessera_steps_total{role=\"worker\",rank=\"3\"} 12\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# TYPE tessera_request_rtt_seconds summary\n"), std::string::npos) << t;
  EXPECT_NE(t.find("tessera_request_rtt_seconds{role=\"worker\",rank=\"3\",server=\"1\",quantile=\"0.99\"} 0.004\n"),
            std::string::npos)
      << t;
  EXPECT_NE(t.find("tessera_request_rtt_seconds_count{role=\"worker\",rank=\"3\",server=\"1\"} 40\n"), std::string::npos) << t;
  EXPECT_EQ(t.find("# TYPE tessera_request_rtt_seconds_count"), std::string::npos) << "part of the summary family";
  EXPECT_NE(t.find("tessera_request_seconds{role=\"server\",rank=\"1\",quantile=\"0.5\"} 0.0001\n"), std::string::npos) << t;
  EXPECT_NE(t.find("# HELP tessera_job_min_step "), std::string::npos) << t;
  EXPECT_NE(t.find("tessera_job_min_step 12\n"), std::string::npos) << t;
}

TEST(MetricsStore, JsonLinesOncePerUpdate) {
  MetricsStore st;
  st.Update("worker", 3,
            {{"steps_total", Kind::kCounter, 12, 0, -1}, {"request_rtt_seconds", Kind::kQuantile, 0.002, 0.5, 1}},
            Clock::now());
  auto lines = st.TakeJsonLines(1.5);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].rfind("{\"event\":\"rank_metrics\",\"role\":\"worker\",\"rank\":3,\"time_s\":1.5,", 0), 0u) << lines[0];
  EXPECT_NE(lines[0].find("\"steps_total\":12"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"servers\":{\"1\":{\"request_rtt_seconds_p50\":0.002}}"), std::string::npos) << lines[0];
  EXPECT_TRUE(st.TakeJsonLines(2).empty()) << "no new report, no new line";
}

// One HTTP exchange over a real socket: sends `request`, returns everything read.
std::string Exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return "connect failed";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(MetricsHttp, AnswersMetricsAndRefusesTheRest) {
  int renders = 0;
  auto s = MetricsHttpServer::Start("127.0.0.1", 0, [&] {
    ++renders;
    return std::string("# HELP tessera_x x\n# TYPE tessera_x gauge\ntessera_x 1\n");
  });
  ASSERT_OK(s.status());
  const int port = (*s)->port();
  ASSERT_GT(port, 0);
  std::string ok = Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << ok;
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << ok;
  EXPECT_NE(ok.find("\r\n\r\n# HELP tessera_x x\n"), std::string::npos) << ok;
  EXPECT_EQ(Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /nope HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 405", 0), 0u);
  EXPECT_EQ(Exchange(port, "\x16\x03\x01garbage\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /metrics\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/9.9\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400", 0), 0u);
  EXPECT_EQ(Exchange(port, "").size(), 0u) << "a client that says nothing gets nothing";
  std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(head.find("tessera_x 1"), std::string::npos) << "HEAD has no body";
  // Still serving after all of that.
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ((*s)->bad_requests(), 4u);
  EXPECT_EQ(renders, 4);
}

TEST(MetricsHttp, BadBindAddressIsNamed) {
  auto s = MetricsHttpServer::Start("not-an-ip", 0, [] { return std::string(); });
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().ToString().find("--metrics_bind=not-an-ip"), std::string::npos) << s.status().ToString();
}

}  // namespace
}  // namespace tessera
