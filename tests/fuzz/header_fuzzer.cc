// libFuzzer target: the header codec on arbitrary bytes.
//
// Properties checked (a violation is a crash libFuzzer reports):
//   * Decode, PeekReplyTarget and everything after never throw or trip a sanitizer;
//   * an accepted message keeps the codec's promise: reading ANY field of its header
//     afterwards (pretty-printing walks them all) cannot throw a kj::Exception;
//   * an accepted message's payload views match their descriptions.
#include <capnp/dynamic.h>
#include <capnp/pretty-print.h>

#include <cstdlib>

#include "tests/fuzz/fuzz_input.h"
#include "wire/codec.h"

namespace {

using namespace tessera;
using namespace tessera::wire;

constexpr uint64_t kSampleJobId = 0x5eed;  // tests/wire/sample_messages.h

void Check(bool cond) {
  if (!cond) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fuzz::FuzzInput in = fuzz::ParseFuzzInput(data, size);
  std::vector<Buffer> frames;
  for (uint32_t s : in.frame_sizes) {
    // Contents are irrelevant (the codec checks sizes only) and left uninitialised.
    frames.push_back(Buffer::Allocate(s));
  }
  DecodeOptions opts;
  if (in.options & fuzz::kExpectJobBit) opts.expected_job_id = kSampleJobId;
  opts.max_message_bytes = (in.options & fuzz::kSmallLimitBit) ? 4096 : (64u << 20);

  ReplyTarget t = PeekReplyTarget("peer", in.header);
  (void)t;
  Result<InMessage> r = Decode("peer", Buffer::CopyOf(in.header), std::move(frames), opts);
  if (!r.ok()) {
    Check(!r.status().message().empty());
    return 0;
  }
  const InMessage& m = *r;
  // No try/catch on purpose: an exception escaping here is a bug in the codec's promise.
  kj::String text = ::capnp::prettyPrint(::capnp::toDynamic(m.header())).flatten();
  Check(text.size() > 0);
  Check(m.num_payloads() == m.header().getPayloads().size());
  for (size_t i = 0; i < m.num_payloads(); ++i) {
    Check(m.payload(i).size() == m.payload_elements(i) * DTypeSize(m.payload_dtype(i)));
    Check(reinterpret_cast<uintptr_t>(m.payload(i).data()) % 8 == 0 || m.payload(i).empty());
  }
  (void)StatusFromError(m);
  OutMessage reply = MakeReply(m, Op::RESPONSE);
  Check(reply.request_id() == m.request_id());
  return 0;
}
