#include "checkpoint/record.h"

#include <cstring>

#include "checkpoint/crc32c.h"

namespace tessera::checkpoint {
namespace {

constexpr uint32_t kMagic = 0x31524354;   // "TCR1" little-endian
constexpr uint32_t kMagic2 = 0x32524354;  // "TCR2": with last_seen
constexpr size_t kHeader = 4 + 4 + 8 + 8 + 8;

size_t HeaderSize(std::string_view value) {
  uint32_t m = 0;
  if (value.size() >= 4) std::memcpy(&m, value.data(), 4);
  return m == kMagic2 ? kHeader + 8 : kHeader;
}

void PutBe64(std::string* s, uint64_t v) {
  for (int i = 7; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <typename T>
void Put(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(v));
}

template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Validates the header and lengths; returns the counts.
Status ParseHeader(std::string_view value, int64_t* updates, int64_t* last_seen, uint64_t* nv, uint64_t* ns) {
  const size_t header = HeaderSize(value);
  if (value.size() < header) {
    return Status::Corruption("record value of " + std::to_string(value.size()) + " bytes is shorter than its header");
  }
  const uint32_t magic = Get<uint32_t>(value.data());
  if (magic != kMagic && magic != kMagic2) return Status::Corruption("record value has a bad magic number");
  *updates = Get<int64_t>(value.data() + 8);
  const size_t o = header - kHeader;  // 8 with last_seen
  *last_seen = o > 0 ? Get<int64_t>(value.data() + 16) : -1;
  *nv = Get<uint64_t>(value.data() + 16 + o);
  *ns = Get<uint64_t>(value.data() + 24 + o);
  const uint64_t body = value.size() - header;
  if (*nv > body / 4 || *ns > body / 4 || (*nv + *ns) * 4 != body) {
    return Status::Corruption("record value lengths (" + std::to_string(*nv) + " values, " + std::to_string(*ns) +
                              " slots) do not match its " + std::to_string(value.size()) + " bytes");
  }
  const uint32_t stored = Get<uint32_t>(value.data() + 4);
  const uint32_t computed = Crc32c(value.data() + 8, value.size() - 8);
  if (stored != computed) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "checksum mismatch: stored 0x%08x, computed 0x%08x", stored, computed);
    return Status::Corruption(buf);
  }
  return Status::OK();
}

}  // namespace

std::string KeyPrefix(RecordKind kind, std::string_view param) {
  std::string k;
  k.reserve(param.size() + 2);
  k.push_back(static_cast<char>(kind));
  k.append(param);
  k.push_back('\0');
  return k;
}

std::string EncodeKey(RecordKind kind, std::string_view param, uint64_t position) {
  std::string k = KeyPrefix(kind, param);
  PutBe64(&k, position);
  return k;
}

Status DecodeKey(std::string_view key, RecordKind* kind, std::string* param, uint64_t* position) {
  const size_t zero = key.find('\0');
  if (key.size() < 10 || (key[0] != 'd' && key[0] != 's' && key[0] != 'x' && key[0] != 'k') ||
      zero == std::string_view::npos ||
      zero + 9 != key.size()) {
    return Status::Corruption("not a checkpoint record key (" + std::to_string(key.size()) + " bytes)");
  }
  *kind = static_cast<RecordKind>(key[0]);
  param->assign(key.substr(1, zero - 1));
  uint64_t v = 0;
  for (size_t i = zero + 1; i < key.size(); ++i) v = (v << 8) | static_cast<uint8_t>(key[i]);
  *position = v;
  return Status::OK();
}

size_t EncodedValueSize(const RecordRef& r) {
  return kHeader + (r.last_seen >= 0 ? 8 : 0) + 4 * (r.values.size() + r.slots.size());
}

void EncodeValue(const RecordRef& r, std::string* out) {
  const size_t start = out->size();
  out->reserve(start + EncodedValueSize(r));
  Put<uint32_t>(out, r.last_seen >= 0 ? kMagic2 : kMagic);
  Put<uint32_t>(out, 0);  // checksum, filled below
  Put<int64_t>(out, r.updates);
  if (r.last_seen >= 0) Put<int64_t>(out, r.last_seen);
  Put<uint64_t>(out, r.values.size());
  Put<uint64_t>(out, r.slots.size());
  if (!r.values.empty()) out->append(reinterpret_cast<const char*>(r.values.data()), r.values.size() * 4);
  if (!r.slots.empty()) out->append(reinterpret_cast<const char*>(r.slots.data()), r.slots.size() * 4);
  const uint32_t crc = Crc32c(out->data() + start + 8, out->size() - start - 8);
  std::memcpy(out->data() + start + 4, &crc, 4);
}

Result<uint32_t> StoredChecksum(std::string_view value) {
  if (value.size() < kHeader) return Status::Corruption("record value shorter than its header");
  return Get<uint32_t>(value.data() + 4);
}

Status CheckValue(std::string_view value) {
  int64_t u, seen;
  uint64_t nv, ns;
  return ParseHeader(value, &u, &seen, &nv, &ns);
}

Status DecodeValue(std::string_view value, Record* out) {
  uint64_t nv, ns;
  TESSERA_RETURN_IF_ERROR(ParseHeader(value, &out->updates, &out->last_seen, &nv, &ns));
  const size_t header = HeaderSize(value);
  out->values.resize(nv);
  out->slots.resize(ns);
  if (nv > 0) std::memcpy(out->values.data(), value.data() + header, nv * 4);
  if (ns > 0) std::memcpy(out->slots.data(), value.data() + header + nv * 4, ns * 4);
  return Status::OK();
}

}  // namespace tessera::checkpoint
