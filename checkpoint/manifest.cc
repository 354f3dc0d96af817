#include "checkpoint/manifest.h"

#include <cinttypes>
#include <cstring>
#include <sstream>

#include "checkpoint/crc32c.h"

namespace tessera::checkpoint {
namespace {

std::string Escape(const std::string& s) {
  if (s.empty()) return "%0";
  std::string out;
  for (char c : s) {
    // Every byte the line tokenizer (istream >>) could split on or a reader could choke
    // on: control characters (\v and \f included, found by manifest_fuzzer), space, %, DEL.
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '%') {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool Unescape(const std::string& s, std::string* out) {
  out->clear();
  if (s == "%0") return true;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out->push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return false;
    char hex[3] = {s[i + 1], s[i + 2], 0};
    char* end = nullptr;
    long v = std::strtol(hex, &end, 16);
    if (end != hex + 2) return false;
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

std::string Hex64(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

std::string FloatBits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  char buf[12];
  std::snprintf(buf, sizeof(buf), "%08x", b);
  return buf;
}

const char* KindName(ParamKind k) { return k == ParamKind::kSparse ? "sparse" : "dense"; }
const char* InitName(InitKind k) {
  switch (k) {
    case InitKind::kZeros: return "zeros";
    case InitKind::kUniform: return "uniform";
    case InitKind::kNormal: return "normal";
    case InitKind::kConstant: return "constant";
  }
  return "?";
}
const char* OptName(OptimizerKind k) {
  switch (k) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kMomentum: return "momentum";
    case OptimizerKind::kAdaGrad: return "adagrad";
    case OptimizerKind::kAdam: return "adam";
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

std::string ShapeCsv(const Shape& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "," : "") + std::to_string(s[i]);
  return out.empty() ? "-" : out;
}

// Line-by-line parser state: the current line's tokens and a cursor into them.
struct Line {
  std::vector<std::string> tok;
  size_t next = 1;
  bool ok = true;
  std::string Str() {
    if (next >= tok.size()) { ok = false; return ""; }
    std::string s;
    if (!Unescape(tok[next++], &s)) ok = false;
    return s;
  }
  uint64_t U64(int base = 10) {
    if (next >= tok.size()) { ok = false; return 0; }
    const std::string& t = tok[next++];
    char* end = nullptr;
    errno = 0;
    uint64_t v = std::strtoull(t.c_str(), &end, base);
    // end must reach the token's real end: a NUL inside it would otherwise cut it short.
    if (t.empty() || end != t.c_str() + t.size() || errno != 0 || t[0] == '-') ok = false;
    return v;
  }
  int64_t I64() {
    if (next >= tok.size()) { ok = false; return 0; }
    const std::string& t = tok[next++];
    char* end = nullptr;
    errno = 0;
    int64_t v = std::strtoll(t.c_str(), &end, 10);
    if (t.empty() || end != t.c_str() + t.size() || errno != 0) ok = false;
    return v;
  }
  float F32() {
    uint64_t b = U64(16);
    if (b > 0xffffffffu) ok = false;
    uint32_t b32 = static_cast<uint32_t>(b);
    float f;
    std::memcpy(&f, &b32, 4);
    return f;
  }
};

template <typename E>
bool ParseName(const std::string& s, E* out, const char* (*name)(E), int n) {
  for (int i = 0; i < n; ++i) {
    if (s == name(static_cast<E>(i))) {
      *out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string DescribeParam(const ParamSpec& p) {
  return p.name + " " + KindName(p.kind) + " " + std::string(DTypeName(p.dtype)) + " [" +
         (p.shape.empty() ? "" : ShapeCsv(p.shape)) + "] " + OptName(p.optimizer.kind);
}

std::string SerializeManifest(const Manifest& m) {
  std::ostringstream o;
  o << "tessera-checkpoint " << m.version << "\n";
  o << "step " << m.step << "\n";
  o << "created_unix_ms " << m.created_unix_ms << "\n";
  o << "full " << (m.full ? 1 : 0) << "\n";
  o << "parent " << m.parent_step << "\n";
  o << "job " << m.num_servers << " " << m.num_workers << " " << Escape(m.sync) << " " << Escape(m.grad_reduce)
    << " " << m.chunk_bytes << "\n";
  for (const auto& [k, v] : m.flags) o << "flag " << Escape(k) << " " << Escape(v) << "\n";
  for (const ParamSpec& p : m.params) {
    const OptimizerConfig& c = p.optimizer;
    o << "param " << Escape(p.name) << " " << KindName(p.kind) << " " << DTypeName(p.dtype) << " "
      << ShapeCsv(p.shape) << " " << InitName(p.init) << " " << FloatBits(p.init_scale) << " " << p.seed << " "
      << OptName(c.kind) << " " << FloatBits(c.lr) << " " << FloatBits(c.momentum) << " " << (c.nesterov ? 1 : 0)
      << " " << FloatBits(c.beta1) << " " << FloatBits(c.beta2) << " " << FloatBits(c.eps) << " "
      << FloatBits(c.weight_decay) << " " << FloatBits(c.clip_norm) << " " << FloatBits(c.initial_accumulator)
      << "\n";
  }
  for (const ServerPart& s : m.servers) {
    o << "server " << s.index << " " << Escape(s.dir) << " " << Hex64(s.digest) << " " << Hex64(s.store_digest) << " "
      << s.records << " " << s.bytes << "\n";
    for (const FileEntry& f : s.files) o << "file " << s.index << " " << Escape(f.name) << " " << f.size << "\n";
  }
  for (const WorkerPart& w : m.workers) {
    o << "worker " << w.index << " " << w.next_step << " " << w.epoch << " " << w.position << "\n";
  }
  o << "bytes_written " << m.bytes_written << "\n";
  std::string body = o.str();
  char buf[32];
  std::snprintf(buf, sizeof(buf), "checksum %08x\n", Crc32c(body.data(), body.size()));
  return body + buf;
}

namespace {

// The record parsers: each reads its fields from `l` (clearing l.ok on a bad one).
void ParseJob(Line& l, Manifest* m) {
  m->num_servers = static_cast<int>(l.I64());
  m->num_workers = static_cast<int>(l.I64());
  m->sync = l.Str();
  m->grad_reduce = l.Str();
  m->chunk_bytes = l.U64();
}

ParamSpec ParseParam(Line& l) {
  ParamSpec p;
  p.name = l.Str();
  std::string kind = l.Str(), dtype = l.Str(), shape = l.Str(), init = l.Str();
  if (kind == "dense") p.kind = ParamKind::kDense;
  else if (kind == "sparse") p.kind = ParamKind::kSparse;
  else l.ok = false;
  auto dt = ParseDType(dtype);
  if (dt) p.dtype = *dt;
  else l.ok = false;
  if (shape != "-") {
    std::istringstream ss(shape);
    for (std::string d; std::getline(ss, d, ',');) p.shape.push_back(std::atoll(d.c_str()));
  }
  if (!ParseName<InitKind>(init, &p.init, InitName, 4)) l.ok = false;
  p.init_scale = l.F32();
  p.seed = l.U64();
  std::string opt = l.Str();
  if (!ParseName<OptimizerKind>(opt, &p.optimizer.kind, OptName, 5)) l.ok = false;
  OptimizerConfig& c = p.optimizer;
  c.lr = l.F32();
  c.momentum = l.F32();
  c.nesterov = l.I64() != 0;
  c.beta1 = l.F32();
  c.beta2 = l.F32();
  c.eps = l.F32();
  c.weight_decay = l.F32();
  c.clip_norm = l.F32();
  c.initial_accumulator = l.F32();
  return p;
}

void ParseServer(Line& l, Manifest* m) {
  ServerPart s;
  s.index = static_cast<int>(l.I64());
  s.dir = l.Str();
  s.digest = l.U64(16);
  s.store_digest = l.U64(16);
  s.records = l.U64();
  s.bytes = l.U64();
  // A second line for the same server would make its files ambiguous (found by
  // manifest_fuzzer: the files were attached to both).
  for (const ServerPart& other : m->servers) if (other.index == s.index) l.ok = false;
  m->servers.push_back(std::move(s));
}

// A file belongs to a server listed before it.
void ParseFile(Line& l, Manifest* m) {
  int idx = static_cast<int>(l.I64());
  FileEntry f;
  f.name = l.Str();
  f.size = l.U64();
  bool found = false;
  for (ServerPart& s : m->servers) {
    if (s.index == idx) {
      s.files.push_back(f);
      found = true;
    }
  }
  if (!found) l.ok = false;
}

WorkerPart ParseWorker(Line& l) {
  WorkerPart w;
  w.index = static_cast<int>(l.I64());
  w.next_step = l.I64();
  w.epoch = l.I64();
  w.position = l.I64();
  return w;
}

// One record after the header into `m`. False for an unknown record name.
bool ParseRecord(Line& l, Manifest* m) {
  const std::string& what = l.tok[0];
  if (what == "step") {
    m->step = l.I64();
  } else if (what == "created_unix_ms") {
    m->created_unix_ms = l.I64();
  } else if (what == "full") {
    m->full = l.I64() != 0;
  } else if (what == "parent") {
    m->parent_step = l.I64();
  } else if (what == "job") {
    ParseJob(l, m);
  } else if (what == "flag") {
    std::string k = l.Str(), v = l.Str();
    m->flags.emplace_back(k, v);
  } else if (what == "param") {
    m->params.push_back(ParseParam(l));
  } else if (what == "server") {
    ParseServer(l, m);
  } else if (what == "file") {
    ParseFile(l, m);
  } else if (what == "worker") {
    m->workers.push_back(ParseWorker(l));
  } else if (what == "bytes_written") {
    m->bytes_written = l.U64();
  } else {
    return false;
  }
  return true;
}

}  // namespace

Result<size_t> ManifestBodySize(const std::string& text, const std::string& where) {
  auto bad = [&](const std::string& what) { return Status::Corruption(where + ": " + what); };
  const size_t last = text.rfind("checksum ", text.size() >= 2 ? text.size() - 2 : 0);
  if (last == std::string::npos || (last != 0 && text[last - 1] != '\n')) return bad("no checksum line (torn write?)");
  unsigned stored = 0;
  if (std::sscanf(text.c_str() + last, "checksum %8x", &stored) != 1) return bad("unreadable checksum line");
  const uint32_t computed = Crc32c(text.data(), last);
  if (stored != computed) {
    char buf[80];
    std::snprintf(buf, sizeof(buf), "checksum mismatch (stored %08x, computed %08x)", stored, computed);
    return bad(buf);
  }
  return last;
}

Status CheckServerParts(const Manifest& m, const std::string& where) {
  int server_parts = 0;
  for (const ServerPart& s : m.servers) {
    if (s.index == kReplicaPart) continue;
    if (s.index < 0 || s.index >= m.num_servers) {
      return Status::Corruption(where + ": server part " + std::to_string(s.index) + " out of range");
    }
    ++server_parts;
  }
  if (server_parts == 0 || server_parts != m.num_servers) {
    return Status::Corruption(where + ": lists " + std::to_string(server_parts) + " server parts for " +
                              std::to_string(m.num_servers) + " servers");
  }
  return Status::OK();
}

Result<Manifest> ParseManifest(const std::string& text, const std::string& where) {
  auto bad = [&](const std::string& what) { return Status::Corruption(where + ": " + what); };
  TESSERA_ASSIGN_OR_RETURN(const size_t last, ManifestBodySize(text, where));
  Manifest m;
  std::istringstream in(text.substr(0, last));
  std::string raw;
  int n = 0;
  bool have_header = false, have_step = false;
  while (std::getline(in, raw)) {
    ++n;
    Line l;
    std::istringstream ls(raw);
    for (std::string t; ls >> t;) l.tok.push_back(t);
    if (l.tok.empty()) continue;
    const std::string& what = l.tok[0];
    if (n == 1) {
      if (what != "tessera-checkpoint") return bad("not a Tessera checkpoint manifest");
      m.version = static_cast<int>(l.I64());
      if (l.ok && m.version != kManifestVersion) {
        return Status::VersionMismatch(where + ": manifest version " + std::to_string(m.version) +
                                       ", this build reads version " + std::to_string(kManifestVersion));
      }
      have_header = true;
    } else if (!ParseRecord(l, &m)) {
      return bad("line " + std::to_string(n) + ": unknown record '" + what + "'");
    }
    have_step = have_step || (n != 1 && what == "step");
    if (!l.ok) return bad("line " + std::to_string(n) + " is malformed: " + raw);
  }
  if (!have_header || !have_step) return bad("missing the header or the step");
  TESSERA_RETURN_IF_ERROR(CheckServerParts(m, where));
  return m;
}

Result<Manifest> ReadManifest(const std::string& step_dir) {
  const std::string path = step_dir + "/" + kManifestName;
  TESSERA_ASSIGN_OR_RETURN(std::string text, ReadWholeFile(path));
  return ParseManifest(text, path);
}

Status CheckCompatible(const Manifest& m, const std::vector<ParamSpec>& declared) {
  auto where = "checkpoint of step " + std::to_string(m.step);
  for (const ParamSpec& d : declared) {
    const ParamSpec* c = nullptr;
    for (const ParamSpec& p : m.params) {
      if (p.name == d.name) c = &p;
    }
    if (c == nullptr) {
      return Status::InvalidArgument("the model's parameter '" + d.name + "' is not in the " + where +
                                     " (it has " + std::to_string(m.params.size()) + " parameters)");
    }
    if (c->kind != d.kind || c->dtype != d.dtype || c->shape != d.shape || c->optimizer.kind != d.optimizer.kind) {
      return Status::InvalidArgument("parameter '" + d.name + "' differs: the " + where + " has " +
                                     DescribeParam(*c) + ", the model declares " + DescribeParam(d));
    }
  }
  for (const ParamSpec& p : m.params) {
    bool found = false;
    for (const ParamSpec& d : declared) found = found || d.name == p.name;
    if (!found) return Status::InvalidArgument("the " + where + " has parameter '" + p.name + "', the model does not");
  }
  return Status::OK();
}

}  // namespace tessera::checkpoint
