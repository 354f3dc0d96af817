// libFuzzer target: the --auth=mac framing (wire/session.h) on arbitrary bytes.
//
// Each input opens a real session (HELLO, WELCOME) between a ROUTER-side and a
// DEALER-side MacLink, then, by its first byte:
//   0: seals frames cut from the input on the DEALER side, XORs the rest of the input
//      into the sealed message (frames and trailer) and hands it to the ROUTER side:
//      it must be accepted exactly when the XOR changed nothing;
//   1: hands raw frames (the last one as the trailer) to the ROUTER side: never accepted
//      (the fuzzer cannot forge a 128-bit tag);
//   2: hands one raw frame to both sides' handshake handling: a ROUTER accepts no HELLO
//      that does not carry the job key's tag.
// And nothing may crash, throw or trip a sanitizer.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "wire/session.h"

namespace {

using namespace tessera;
using namespace tessera::wire;

void Check(bool cond) {
  if (!cond) abort();
}

MacAuthConfig Config() {
  MacAuthConfig c;
  for (size_t i = 0; i < c.job_key.size(); ++i) c.job_key[i] = static_cast<uint8_t>(i * 7 + 1);
  c.primitive = MacPrimitive::kPoly1305;
  return c;
}

std::vector<std::vector<std::byte>> Cut(const uint8_t* d, size_t n, size_t parts) {
  std::vector<std::vector<std::byte>> out(parts);
  for (size_t i = 0; i < parts; ++i) {
    const size_t a = n * i / parts, b = n * (i + 1) / parts;
    out[i].assign(reinterpret_cast<const std::byte*>(d + a), reinterpret_cast<const std::byte*>(d + b));
  }
  return out;
}

std::vector<std::span<const std::byte>> Spans(const std::vector<std::vector<std::byte>>& f, size_t count) {
  std::vector<std::span<const std::byte>> s;
  for (size_t i = 0; i < count; ++i) s.emplace_back(f[i]);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const MacAuthConfig config = Config();
  MacLink router(config, /*router=*/true, PeerIdentity{}, /*expected_job_id=*/9, 16);
  MacLink dealer(config, /*router=*/false, PeerIdentity{9, 2, 3}, 0, 16);
  const std::string id = "peer-1";
  auto welcome = router.OnHandshake(id, dealer.StartHandshake(), "fuzz");
  Check(welcome.verdict == MacLink::Verdict::kHandshake && !welcome.reply.empty());
  Check(dealer.OnHandshake("", welcome.reply, "fuzz").verdict == MacLink::Verdict::kHandshake);
  Check(dealer.established());

  const uint8_t mode = data[0] % 3;
  const size_t parts = 1 + data[1] % 4;
  data += 2;
  size = size - 2;
  if (mode == 0) {
    const size_t half = size / 2;
    auto frames = Cut(data, half, parts);
    auto trailer = dealer.Seal("", Spans(frames, parts));
    Check(trailer.ok());
    // The sealed message as bytes: frames then trailer; XOR the rest of the input in.
    auto sent = frames;
    sent.emplace_back(trailer->begin(), trailer->end());
    bool changed = false;
    size_t k = 0;
    for (auto& f : sent) {
      for (auto& b : f) {
        if (half + k >= size) break;
        const std::byte x{data[half + k++]};
        changed = changed || x != std::byte{0};
        b ^= x;
      }
    }
    auto in = router.Open(id, Spans(sent, parts), sent.back(), "fuzz");
    Check((in.verdict == MacLink::Verdict::kData) == !changed);
    if (!changed) {  // and the same message again is a replay
      Check(router.Open(id, Spans(sent, parts), sent.back(), "fuzz").verdict == MacLink::Verdict::kRefused);
      Check(router.refusals().replayed == 1);
    }
  } else if (mode == 1) {
    auto frames = Cut(data, size, parts + 1);
    auto in = router.Open(id, Spans(frames, parts), frames.back(), "fuzz");
    Check(in.verdict == MacLink::Verdict::kRefused);
    auto other = router.Open("stranger", Spans(frames, parts), frames.back(), "fuzz");
    Check(other.verdict == MacLink::Verdict::kRefused && other.reply.size() == kRetryBytes);
  } else {
    std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(data), size);
    auto r = router.OnHandshake("new-peer", frame, "fuzz");
    Check(r.verdict == MacLink::Verdict::kRefused && r.reply.empty());
    (void)dealer.OnHandshake("", frame, "fuzz");
    (void)ParseHello(config.job_key, frame);
  }
  return 0;
}
