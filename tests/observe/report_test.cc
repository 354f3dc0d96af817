// `tessera report` (observe/report.h) on a generated, realistic metrics file: the SVGs
// are well-formed, each polyline has one point per finite data point, axes are labelled,
// index.html shows every plot with the summary; bad input gets "file:line" errors.
#include "observe/report.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <regex>
#include <sstream>

#include "observe/svg_plot.h"
#include "tests/testutil/testutil.h"

namespace tessera::observe {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream o(path);
  o << text;
}

// A run like `tessera train --metrics_out` writes, plus rank_metrics lines: 200 steps
// (step 17's loss non-finite -> null), evals every 50 steps, a summary.
std::string RealisticMetrics() {
  std::ostringstream o;
  for (int s = 0; s < 200; ++s) {
    const double loss = 2.3 * std::exp(-s / 60.0) + 0.1 + 0.05 * std::sin(s * 1.7);
    o << "{\"event\":\"step\",\"step\":" << s << ",\"epoch\":" << s / 94.0 << ",\"loss\":";
    if (s == 17) o << "null"; else o << loss;
    o << ",\"samples_per_sec\":" << 9000 + 300 * std::sin(s / 9.0) << "}\n";
    if ((s + 1) % 50 == 0) {
      o << "{\"event\":\"eval\",\"step\":" << s + 1 << ",\"test_accuracy\":" << 0.8 + s / 2000.0
        << ",\"test_loss\":" << 0.6 - s / 1000.0 << ",\"test_examples\":1000}\n";
      for (int r = 0; r < 3; ++r) {
        o << "{\"event\":\"rank_metrics\",\"role\":\"" << (r < 2 ? "worker" : "server") << "\",\"rank\":" << r
          << ",\"step\":" << s + 1 << ",\"steps_per_sec\":" << 140 + r * 3 << ",\"bytes_pushed\":" << (s + 1) * 4e5
          << ",\"note\":\"ignored\"}\n";
      }
    }
    if (s == 120) o << "{\"event\":\"checkpoint\",\"step\":120,\"bytes_written\":1000}\n";
    if (s == 130) o << "{\"event\":\"from_the_future\",\"x\":[1,2]}\n";
  }
  o << "{\"event\":\"summary\",\"model\":\"mlp\",\"sync\":\"bsp\",\"workers\":2,\"servers\":2,\"steps\":200,"
       "\"samples_per_sec\":9100.5,\"test_accuracy\":0.9,\"data_s\":0.1,\"compute_s\":1.5,\"issue_s\":0.05,"
       "\"push_s\":0.4,\"pull_s\":0.9,\"report_s\":0.01,\"eval_s\":0.2,\"bytes_pushed\":80000000,"
       "\"bytes_pulled\":79000000,\"params_digest\":\"00ff\"}\n";
  return o.str();
}

// Well-formedness of the tags (what a browser's XML parser checks first): every opened
// element is closed in order.
void ExpectBalancedXml(const std::string& svg, const std::string& what) {
  std::vector<std::string> stack;
  std::regex tag(R"(<(/?)([a-zA-Z][a-zA-Z0-9]*)[^>]*?(/?)>)");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), tag); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[2];
    if ((*it)[1] == "/") {
      ASSERT_FALSE(stack.empty()) << what << ": </" << name << "> closes nothing";
      ASSERT_EQ(stack.back(), name) << what;
      stack.pop_back();
    } else if ((*it)[3] != "/") {
      stack.push_back(name);
    }
  }
  EXPECT_TRUE(stack.empty()) << what << ": unclosed <" << (stack.empty() ? "" : stack.back()) << ">";
}

// Point counts of the polylines, in document order.
std::vector<size_t> PolylinePoints(const std::string& svg) {
  std::vector<size_t> out;
  std::regex poly(R"re(<polyline[^>]*points="([^"]*)")re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), poly); it != std::sregex_iterator(); ++it) {
    std::istringstream pts((*it)[1].str());
    size_t n = 0;
    for (std::string p; pts >> p;) {
      EXPECT_TRUE(std::regex_match(p, std::regex(R"(-?[0-9.]+,-?[0-9.]+)"))) << p;
      ++n;
    }
    out.push_back(n);
  }
  return out;
}

class ReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    metrics_ = dir_.path() + "/run1.jsonl";
    WriteFile(metrics_, RealisticMetrics());
  }
  testing::TempDir dir_;
  std::string metrics_;
};

TEST_F(ReportTest, WritesReadablePlotsAndIndex) {
  auto log = ReadMetricsLog(metrics_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ(log->steps.size(), 200u);
  EXPECT_EQ(log->evals.size(), 4u);
  EXPECT_EQ(log->ranks.size(), 12u);
  const std::string out = dir_.path() + "/report";
  std::vector<std::string> written;
  ASSERT_OK(WriteReport({*log}, out, &written));
  for (const char* f : {"loss.svg", "accuracy.svg", "test_loss.svg", "throughput.svg", "time_breakdown.svg",
                        "communication.svg", "rank_steps_per_sec.svg", "rank_bytes_pushed.svg", "index.html"}) {
    EXPECT_NE(std::find(written.begin(), written.end(), out + "/" + f), written.end()) << f;
  }
  for (const std::string& path : written) {
    if (!path.ends_with(".svg")) continue;
    const std::string svg = ReadAll(path);
    EXPECT_EQ(svg.rfind("<?xml", 0), 0u) << path;
    EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos) << path;
    EXPECT_TRUE(svg.ends_with("</svg>\n")) << path;
    ExpectBalancedXml(svg, path);
    EXPECT_NE(svg.find("class=\"title\""), std::string::npos) << path;
    EXPECT_NE(svg.find("class=\"ylabel\""), std::string::npos) << path;
    EXPECT_NE(svg.find("class=\"ytick\""), std::string::npos) << path;
  }
  // Loss: raw and smoothed, one point per finite loss (step 17's is null).
  const std::string loss = ReadAll(out + "/loss.svg");
  EXPECT_EQ(PolylinePoints(loss), (std::vector<size_t>{199, 199}));
  EXPECT_NE(loss.find(">step</text>"), std::string::npos);
  EXPECT_NE(loss.find(">loss</text>"), std::string::npos);
  EXPECT_NE(loss.find(">smoothed</text>"), std::string::npos) << "legend";
  EXPECT_EQ(PolylinePoints(ReadAll(out + "/accuracy.svg")), (std::vector<size_t>{4}));
  // Throughput per step plus the summary's whole-run line (2 points).
  EXPECT_EQ(PolylinePoints(ReadAll(out + "/throughput.svg")), (std::vector<size_t>{200, 2}));
  // Per rank: 3 ranks x 4 reports.
  const std::string rank = ReadAll(out + "/rank_steps_per_sec.svg");
  EXPECT_EQ(PolylinePoints(rank), (std::vector<size_t>{4, 4, 4}));
  EXPECT_NE(rank.find(">worker 1</text>"), std::string::npos);
  EXPECT_NE(rank.find(">server 2</text>"), std::string::npos);
  EXPECT_EQ(ReadAll(out + "/communication.svg").find("<polyline"), std::string::npos);
  const std::string html = ReadAll(out + "/index.html");
  for (const std::string& path : written) {
    if (!path.ends_with(".svg")) continue;
    const std::string name = path.substr(path.rfind('/') + 1);
    EXPECT_NE(html.find("<img src=\"" + name + "\""), std::string::npos) << name;
  }
  EXPECT_NE(html.find("<td>params_digest</td><td>00ff</td>"), std::string::npos);
  EXPECT_NE(html.find("<td>samples_per_sec</td><td>9100.5</td>"), std::string::npos);
}

TEST_F(ReportTest, SeveralRunsAreSeriesOfOnePlot) {
  const std::string second = dir_.path() + "/run2.jsonl";
  WriteFile(second, RealisticMetrics());
  auto a = ReadMetricsLog(metrics_);
  auto b = ReadMetricsLog(second);
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<std::string> written;
  ASSERT_OK(WriteReport({*a, *b}, dir_.path() + "/cmp", &written));
  const std::string loss = ReadAll(dir_.path() + "/cmp/loss.svg");
  EXPECT_EQ(PolylinePoints(loss).size(), 4u);
  EXPECT_NE(loss.find(">run2 smoothed</text>"), std::string::npos);
  const std::string html = ReadAll(dir_.path() + "/cmp/index.html");
  EXPECT_NE(html.find("<th>run1</th><th>run2</th>"), std::string::npos);
}

TEST_F(ReportTest, MalformedInputNamesFileAndLine) {
  struct Case {
    std::string text;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"{\"event\":\"step\",\"step\":0,\"loss\":1}\n{\"event\":\"step\",\"step\":1,\"lo", ":2: not valid JSON"},
      {"{\"event\":\"step\",\"step\":0,\"loss\":1}\n\n{\"event\":\"step\",\"step\":2,\"loss\":\"high\"}\n",
       ":3: \"loss\" is \"high\", not a number"},
      {"{\"event\":\"eval\",\"step\":1.5}\n", ":1: \"step\" is 1.5, not an integer"},
      {"[1,2]\n", ":1: not a JSON object"},
      {"{\"event\":\"step\",\"loss\":1}\n", ":1: \"step\" is missing"},
      {"{\"event\":\"rank_metrics\",\"rank\":0}\n", ":1: rank_metrics without a \"role\""},
      {"{\"event\":\"other\"}\n", "no step, eval, summary or rank_metrics event in 1 lines"},
  };
  for (const Case& c : cases) {
    const std::string path = dir_.path() + "/bad.jsonl";
    WriteFile(path, c.text);
    auto log = ReadMetricsLog(path);
    ASSERT_FALSE(log.ok()) << c.text;
    EXPECT_EQ(log.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(log.status().message().find(path), std::string::npos) << log.status().ToString();
    EXPECT_NE(log.status().message().find(c.expect), std::string::npos) << log.status().ToString();
  }
  auto missing = ReadMetricsLog(dir_.path() + "/nope.jsonl");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.jsonl"), std::string::npos);
}

TEST_F(ReportTest, CommandLine) {
  const std::string out = dir_.path() + "/cli";
  auto ok = testing::RunCommand(testing::TesseraBinary() + " report " + metrics_ + " -o " + out);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("wrote " + out + "/index.html"), std::string::npos) << ok.output;
  WriteFile(dir_.path() + "/bad.jsonl", "{\"event\":\"step\",\"step\":0,\"loss\":1}\nnot json\n");
  auto bad = testing::RunCommand(testing::TesseraBinary() + " report " + dir_.path() + "/bad.jsonl -o " + out);
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("bad.jsonl:2: not valid JSON"), std::string::npos) << bad.output;
  // Merging the per-process timeline files of a job not started by `tessera launch`.
  WriteFile(dir_.path() + "/tr.worker0.json",
            "{\"traceEvents\":[{\"name\":\"step\",\"ph\":\"X\",\"ts\":1,\"dur\":2,\"pid\":3,\"tid\":9}]}");
  WriteFile(dir_.path() + "/tr.server0.json",
            "{\"traceEvents\":[{\"name\":\"push\",\"ph\":\"X\",\"ts\":1,\"dur\":1,\"pid\":1,\"tid\":8}]}");
  auto merge = testing::RunCommand(testing::TesseraBinary() + " report --timeline=" + dir_.path() + "/tr.json");
  EXPECT_EQ(merge.exit_code, 0) << merge.output;
  const std::string merged = ReadAll(dir_.path() + "/tr.json");
  EXPECT_LT(merged.find("\"step\""), merged.find("\"push\"")) << "workers first: " << merged;
  WriteFile(dir_.path() + "/tr.worker1.json", "{\"traceEvents\":");
  auto torn = testing::RunCommand(testing::TesseraBinary() + " report --timeline=" + dir_.path() + "/tr.json");
  EXPECT_EQ(torn.exit_code, 1) << torn.output;
  EXPECT_NE(torn.output.find("tr.worker1.json: not a Chrome trace"), std::string::npos) << torn.output;
  auto usage = testing::RunCommand(testing::TesseraBinary() + " report " + metrics_);
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_NE(usage.output.find("-o DIR"), std::string::npos) << usage.output;
}

TEST(SvgPlot, NiceTicksCoverTheRange) {
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0, 1}, {0.013, 2.31}, {5, 5}, {-3, 1e6}, {1e-4, 3e-4}}) {
    auto t = NiceTicks(lo, hi);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.front(), lo);
    EXPECT_GE(t.back(), hi);
    EXPECT_LE(t.size(), 13u);
  }
  EXPECT_EQ(FormatTick(25000), "25k");
  EXPECT_EQ(FormatTick(8000), "8k");
  EXPECT_EQ(FormatTick(1.5e6), "1.5M");
  EXPECT_EQ(FormatTick(0.25), "0.25");
  EXPECT_EQ(XmlEscape("a<b&\"c\">"), "a&lt;b&amp;&quot;c&quot;&gt;");
}

}  // namespace
}  // namespace tessera::observe
