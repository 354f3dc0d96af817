#include "launch/datagen_main.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "common/exit_codes.h"
#include "worker/data/criteo_gen.h"
#include "worker/sparse/binary_metrics.h"

namespace tessera::launch {

namespace {

constexpr char kUsage[] =
    "usage: tessera datagen criteo --rows N [--valid_rows M] [--seed S] [--card_scale K]\n"
    "                              [--zipf_offset D] -o DIR\n"
    "  writes DIR/train.txt, DIR/valid.txt (Criteo Kaggle TSV layout, labels from a planted\n"
    "  model) and DIR/planted.txt (the planted model's AUC and log-loss on valid.txt);\n"
    "  --card_scale multiplies every field's cardinality (default 1: the Kaggle set's),\n"
    "  --zipf_offset is added to every field's Zipf exponent (default 0; < 0: flatter tails)\n";

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "tessera datagen: %s\n", why.c_str());
  std::fputs(kUsage, stderr);
  return kExitConfig;
}

template <typename T>
bool ParseNumber(const std::string& s, T* out) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

int DatagenMain(int argc, char** argv) {
  if (argc >= 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (argc < 2 || std::strcmp(argv[1], "criteo") != 0) {
    return Usage(argc < 2 ? "which data set? (criteo)"
                          : "unknown data set '" + std::string(argv[1]) + "'");
  }
  data::CriteoGenOptions o;
  bool have_rows = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i], value;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Usage(a + " needs a value");
    }
    if (a == "--rows") {
      if (!ParseNumber(value, &o.rows) || o.rows < 1)
        return Usage("--rows=" + value + ": expected an integer >= 1");
      have_rows = true;
    } else if (a == "--valid_rows") {
      if (!ParseNumber(value, &o.valid_rows) || o.valid_rows < 1) {
        return Usage("--valid_rows=" + value + ": expected an integer >= 1");
      }
    } else if (a == "--seed") {
      if (!ParseNumber(value, &o.seed))
        return Usage("--seed=" + value + ": expected an unsigned integer");
    } else if (a == "--card_scale") {
      if (!ParseNumber(value, &o.card_scale))
        return Usage("--card_scale=" + value + ": expected a number");
    } else if (a == "--zipf_offset") {
      if (!ParseNumber(value, &o.zipf_offset))
        return Usage("--zipf_offset=" + value + ": expected a number");
    } else if (a == "-o" || a == "--out") {
      o.out_dir = value;
    } else {
      return Usage("unknown flag " + a);
    }
  }
  if (!have_rows) return Usage("--rows is required");
  if (o.out_dir.empty()) return Usage("-o DIR is required");
  auto report = data::GenerateCriteo(o);
  if (!report.ok()) {
    std::fprintf(stderr, "tessera datagen: %s\n", report.status().ToString().c_str());
    return report.status().code() == StatusCode::kInvalidArgument ? kExitConfig : kExitFailure;
  }
  const double auc = worker::sparse::Auc(report->valid_logits, report->valid_labels);
  const double logloss = worker::sparse::LogLoss(report->valid_logits, report->valid_labels);
  char line[256];
  std::snprintf(line, sizeof(line),
                "planted model on valid.txt: AUC %.4f, log-loss %.4f (%zu rows)", auc, logloss,
                report->valid_labels.size());
  const std::string planted = o.out_dir + "/planted.txt";
  std::ofstream out(planted);
  out << line << "\ntrain.txt: " << o.rows << " rows, positive rate " << report->positive_rate
      << ", seed " << o.seed << "\n";
  if (!out.good()) {
    std::fprintf(stderr, "tessera datagen: %s: write failed\n", planted.c_str());
    return kExitFailure;
  }
  std::printf("wrote %s (%lld rows, %.3f positive) and %s\n%s\n", report->train_path.c_str(),
              static_cast<long long>(o.rows), report->positive_rate, report->valid_path.c_str(),
              line);
  return kExitOk;
}

}  // namespace tessera::launch
