#include "wire/shm_frames.h"

namespace tessera::wire {

namespace shm {

bool IsLinkFrame(std::span<const std::byte> frame) {
  if (!IsShmFrame(frame)) return false;
  Reader r(frame);
  const uint32_t kind = r.U32();
  return r.ok() && kind >= kLinkOffer && kind <= kLinkRefuse;
}

bool DecodeOffer(Reader& r, Offer* o) {
  o->pid = r.U32();
  o->fd = static_cast<int32_t>(r.U32());
  o->uid = r.U32();
  o->bytes = r.U64();
  o->nonce = r.U64();
  o->host = r.Str(4096);
  return r.ok() && r.at_end();
}

std::vector<std::byte> EncodeRefuse(const std::string& why) {
  Writer w(kRefuse);
  w.Str(why);
  return w.Take();
}

}  // namespace shm

bool IsShmFrame(std::span<const std::byte> frame) {
  return frame.size() >= sizeof(shm::kMagic) && std::memcmp(frame.data(), shm::kMagic, sizeof(shm::kMagic)) == 0;
}

std::vector<std::byte> EncodeShmDataFrame(uint64_t nonce, const std::vector<ShmSlotRef>& refs, bool streamed) {
  shm::Writer w(streamed ? shm::kStreamedData : shm::kData);
  w.U64(nonce);
  w.U32(static_cast<uint32_t>(refs.size()));
  for (const ShmSlotRef& r : refs) {
    w.U64(r.offset);
    w.U64(r.length);
    w.U64(r.token);
  }
  return w.Take();
}

}  // namespace tessera::wire
