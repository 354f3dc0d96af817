// wire_peer <endpoint> <payload bytes>: the other process of process_test. Connects a
// DEALER, pushes a patterned payload, and checks the reply byte for byte.
// wire_peer alloc <0|1>: receives 64 MiB messages over loopback, with allocator tuning
// off or on, and prints the page faults the last receive cost ("faults=N"). It runs in
// its own process because the tuning is process-wide and must precede ZeroMQ's threads.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/wire/peer_protocol.h"
#include "wire/alloc.h"
#include "wire/socket.h"

using namespace tessera;
using namespace tessera::wire;
using tessera::wire::testing::PeerByte;

namespace {

long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

int AllocMode(bool tune) {
  if (tune && !TuneAllocatorForLargeMessages()) return testing::kPeerBadArgs;
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto router = Socket::Create(*ctx, SocketType::kRouter);
  auto dealer = Socket::Create(*ctx, SocketType::kDealer);
  if (!router.ok() || !dealer.ok()) return testing::kPeerCallFailed;
  Result<std::string> ep = (*router)->Bind("tcp://127.0.0.1:*");
  if (!ep.ok() || !(*dealer)->Connect(*ep).ok()) return testing::kPeerCallFailed;
  const uint64_t n = 64 << 20;
  Buffer values = Buffer::Zeros(n);
  long faults = 0;
  for (int i = 0; i < 3; ++i) {
    const long before = MinorFaults();
    OutMessage m(Op::RESPONSE);
    if (!m.AddPayload(values, DType::kF32, n / 4).ok()) return testing::kPeerBadArgs;
    if (!(*dealer)->Send(std::move(m)).ok()) return testing::kPeerCallFailed;
    Result<InMessage> r = (*router)->Recv(Deadline::FromMillis(60000));
    if (!r.ok() || r->payload(0).size() != n) return testing::kPeerCallFailed;
    faults = MinorFaults() - before;  // the last round: steady state
  }
  printf("faults=%ld\n", faults);
  return testing::kPeerOk;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "alloc") return AllocMode(std::string(argv[2]) == "1");
  if (argc != 3) {
    fprintf(stderr, "usage: wire_peer <endpoint> <payload bytes>\n");
    return testing::kPeerBadArgs;
  }
  TuneAllocatorForLargeMessages();
  const std::string endpoint = argv[1];
  const uint64_t n = std::strtoull(argv[2], nullptr, 10) / 4 * 4;
  auto ctx = Context::Create();
  auto sock = ctx.ok() ? Socket::Create(*ctx, SocketType::kDealer)
                       : Result<std::unique_ptr<Socket>>(ctx.status());
  if (!sock.ok()) {
    fprintf(stderr, "wire_peer: %s\n", sock.status().ToString().c_str());
    return testing::kPeerCallFailed;
  }
  if (Status st = (*sock)->Connect(endpoint); !st.ok()) {
    fprintf(stderr, "wire_peer: %s\n", st.ToString().c_str());
    return testing::kPeerCallFailed;
  }
  Buffer values = Buffer::Allocate(n);
  for (uint64_t i = 0; i < n; ++i) values.as<std::byte>()[i] = PeerByte(i);
  OutMessage push(Op::PUSH);
  auto d = push.header().getBody().initData();
  d.setParamId(3);
  d.setBegin(0);
  d.setEnd(n / 4);
  if (Status st = push.AddPayload(values, DType::kF32, n / 4); !st.ok()) {
    fprintf(stderr, "wire_peer: %s\n", st.ToString().c_str());
    return testing::kPeerBadArgs;
  }
  Result<InMessage> reply = Call(**sock, std::move(push), Deadline::FromMillis(60000));
  if (!reply.ok()) {
    fprintf(stderr, "wire_peer: %s\n", reply.status().ToString().c_str());
    return testing::kPeerCallFailed;
  }
  if (reply->num_payloads() != 1 || reply->payload(0).size() != n) {
    fprintf(stderr, "wire_peer: reply has %zu payloads\n", reply->num_payloads());
    return testing::kPeerMismatch;
  }
  const std::byte* got = reply->payload(0).data();
  for (uint64_t i = 0; i < n; ++i) {
    if (got[i] != (PeerByte(i) ^ testing::kReplyMask)) {
      fprintf(stderr, "wire_peer: reply byte %llu differs\n", static_cast<unsigned long long>(i));
      return testing::kPeerMismatch;
    }
  }
  return testing::kPeerOk;
}
