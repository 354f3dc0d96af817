#include "worker/data/criteo_gen.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "common/hash.h"
#include "worker/data/criteo.h"

namespace tessera::data {

namespace {

constexpr int kHead = 16;  // ranks of a field that carry a planted weight
constexpr int kLatent = 4;
constexpr int kPairs[3][2] = {{0, 2}, {5, 13}, {8, 20}};  // fields with a latent interaction
constexpr double kBias = -1.8;                            // about a quarter positive, as Criteo

// Splitmix64 stream of one row.
struct Rng {
  uint64_t s;
  uint64_t Next() { return s = Mix64(s); }
  double Uniform() {
    return (static_cast<double>(Next() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  }
  double Normal() {
    const double u = Uniform();
    const double v = Uniform();  // sequenced: operand order of * is unspecified
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

// A standard normal that is a pure function of (seed, a, b, c).
double HashNormal(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  Rng r{HashCombine(HashCombine(HashCombine(seed, a), b), c)};
  return r.Normal();
}

double ZipfExponent(int f) { return 1.05 + 0.25 * static_cast<double>((f * 7) % 26) / 25.0; }
double CatMissing(int f) { return f >= 18 ? 0.4 : (f % 9 == 3 ? 0.03 : 0.0); }
double DenseMissing(int k) { return k % 4 == 0 ? 0.4 : (k % 3 == 1 ? 0.05 : 0.2); }

// A rank in [1, card] of the power law p(r) ~ r^-s (inverse CDF of the continuous law).
int64_t ZipfRank(double u, int64_t card, double s) {
  const double a = 1.0 - s;
  if (std::fabs(a) < 1e-9) {  // s = 1: the log law
    return std::clamp<int64_t>(
        static_cast<int64_t>(std::exp(u * std::log(static_cast<double>(card) + 1.0))), 1, card);
  }
  const double top = std::pow(static_cast<double>(card) + 1.0, a);
  const double r = std::pow(1.0 + u * (top - 1.0), 1.0 / a);
  return std::clamp<int64_t>(static_cast<int64_t>(r), 1, card);
}

// Planted weight of rank r of field f (0 outside the head), and its latent vector.
double FieldWeight(uint64_t seed, int f, int64_t r) {
  if (r > kHead) return 0.0;
  const double scale =
      0.25 + 0.35 * std::fabs(HashNormal(seed, 11, static_cast<uint64_t>(f), 0)) / 2.0;
  return scale * HashNormal(seed, 12, static_cast<uint64_t>(f), static_cast<uint64_t>(r));
}
double Latent(uint64_t seed, int f, int64_t r, int d) {
  if (r > kHead) return 0.0;
  return 0.5 * HashNormal(seed, 13, static_cast<uint64_t>(f) * 64 + static_cast<uint64_t>(d),
                          static_cast<uint64_t>(r));
}

char* Hex8(uint32_t v, char* p) {
  static const char kDigits[] = "0123456789abcdef";
  for (int i = 7; i >= 0; --i) p[7 - i] = kDigits[(v >> (4 * i)) & 15];
  return p + 8;
}

}  // namespace

const std::vector<int64_t>& CriteoCardinalities() {
  static const std::vector<int64_t> kCards = {
      1460,  583,  10131227, 2202608, 305, 24,     12517,   633,   3,
      93145, 5683, 8351593,  3194,    27,  14992,  5461306, 10,    5652,
      2173,  4,    7046547,  18,      15,  286181, 105,     142572};
  return kCards;
}

std::string CriteoSyntheticLine(const CriteoGenOptions& o, int split, int64_t row, float* logit) {
  const auto& cards = CriteoCardinalities();
  const uint64_t seed = o.seed;
  Rng rng{HashCombine(HashCombine(seed, 0xc417e0ULL + static_cast<uint64_t>(split)),
                      static_cast<uint64_t>(row))};
  double z = kBias;
  char buf[640];      // >= 2 + 13 * 25 + 26 * 9: every field at its widest
  char* p = buf + 2;  // the label goes in front
  for (int k = 0; k < kCriteoDense; ++k) {
    *p++ = '\t';
    const double miss = rng.Uniform();
    const double n = rng.Normal();
    const double mu = 0.5 + 0.4 * static_cast<double>(k % 7);
    int64_t v = static_cast<int64_t>(std::floor(std::exp(mu + 1.1 * n))) - 1;
    if (k == 1 && rng.Uniform() < 0.1) v = -1 - static_cast<int64_t>(rng.Next() % 3);
    if (miss < DenseMissing(k)) {
      v = 0;  // an empty field reads as 0
    } else {
      p += std::snprintf(p, 24, "%lld", static_cast<long long>(v));
    }
    if (k % 2 == 0 && k < 12) {
      const double sign = (k / 2) % 2 == 0 ? 1.0 : -1.0;
      z += sign * 0.35 * (std::log1p(static_cast<double>(std::max<int64_t>(v, 0))) - mu);
    }
  }
  int64_t ranks[kCriteoCategorical];
  for (int f = 0; f < kCriteoCategorical; ++f) {
    *p++ = '\t';
    const double miss = rng.Uniform();
    const int64_t card =
        std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(cards[f]) * o.card_scale));
    const int64_t r = ZipfRank(rng.Uniform(), card, ZipfExponent(f) + o.zipf_offset);
    if (miss < CatMissing(f)) {
      ranks[f] = 0;
      continue;
    }
    ranks[f] = r;
    z += FieldWeight(seed, f, r);
    p = Hex8(static_cast<uint32_t>(HashCombine(
                 HashCombine(seed, 0xca7ULL + static_cast<uint64_t>(f)), static_cast<uint64_t>(r))),
             p);
  }
  for (const auto& pair : kPairs) {
    const int64_t a = ranks[pair[0]], b = ranks[pair[1]];
    if (a == 0 || b == 0) continue;
    for (int d = 0; d < kLatent; ++d)
      z += Latent(seed, pair[0], a, d) * Latent(seed, pair[1], b, d);
  }
  const bool positive = rng.Uniform() < 1.0 / (1.0 + std::exp(-z));
  buf[1] = positive ? '1' : '0';
  *logit = static_cast<float>(z);
  return std::string(buf + 1, p);
}

Result<CriteoGenReport> GenerateCriteo(const CriteoGenOptions& o) {
  if (o.rows < 1)
    return Status::InvalidArgument("--rows=" + std::to_string(o.rows) + ": must be >= 1");
  if (o.out_dir.empty()) return Status::InvalidArgument("-o: an output directory is required");
  if (!(o.card_scale > 0 && o.card_scale <= 1000)) {
    return Status::InvalidArgument("--card_scale=" + std::to_string(o.card_scale) +
                                   ": must be in (0, 1000]");
  }
  if (!(o.zipf_offset >= -1 && o.zipf_offset <= 1)) {
    return Status::InvalidArgument("--zipf_offset=" + std::to_string(o.zipf_offset) +
                                   ": must be in [-1, 1]");
  }
  const int64_t valid_rows =
      o.valid_rows >= 0 ? o.valid_rows : std::max<int64_t>(1000, o.rows / 10);
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) return Status::IOError(o.out_dir + ": cannot create the directory: " + ec.message());
  CriteoGenReport report;
  report.train_path = (std::filesystem::path(o.out_dir) / "train.txt").string();
  report.valid_path = (std::filesystem::path(o.out_dir) / "valid.txt").string();
  int64_t positives = 0;
  for (int split = 0; split < 2; ++split) {
    const std::string& path = split == 0 ? report.train_path : report.valid_path;
    const int64_t n = split == 0 ? o.rows : valid_rows;
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!f) return Status::IOError(path + ": cannot open for writing");
    for (int64_t i = 0; i < n; ++i) {
      float z;
      std::string line = CriteoSyntheticLine(o, split, i, &z);
      line.push_back('\n');
      if (std::fwrite(line.data(), 1, line.size(), f.get()) != line.size()) {
        return Status::IOError(path + ": write failed");
      }
      const bool pos = line[0] == '1';
      if (split == 0) {
        positives += pos ? 1 : 0;
      } else {
        report.valid_logits.push_back(z);
        report.valid_labels.push_back(pos ? 1.0f : 0.0f);
      }
    }
    if (std::fflush(f.get()) != 0) return Status::IOError(path + ": write failed");
  }
  report.positive_rate = static_cast<double>(positives) / static_cast<double>(o.rows);
  return report;
}

}  // namespace tessera::data
