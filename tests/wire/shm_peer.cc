// shm_peer: the other process of shm_process_test.
//
//   shm_peer push <endpoint> <bytes> <auto|off> [hold]
//     DEALER: waits for the shared-memory channel (auto), pushes PeerByte-patterned
//     bytes, checks the reply (every byte XOR kReplyMask), and checks its own counters:
//     with auto both directions went through shared memory and no payload byte over
//     TCP; with off the reverse. "hold": then sleeps (the test kills it with -9).
//   shm_peer stall <endpoint> <bytes>
//     DEALER: waits until the channel streams (the ROUTER said STREAM_OK), then sends a
//     streamed push+pull whose progress word says 4096 bytes forever (a sender that
//     stalls mid-copy), prints "sent" and sleeps (the test kills it with -9).
//   shm_peer serve <auto|off>
//     ROUTER: binds tcp://127.0.0.1:*, prints "endpoint=<ep>" on stdout, answers each
//     push with its bytes XOR kReplyMask, for up to 60 s (the test kills it with -9).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/wire/peer_protocol.h"
#include "wire/shm_stream.h"
#include "wire/socket.h"

using namespace tessera;
using namespace tessera::wire;
using tessera::wire::testing::PeerByte;

namespace {

SocketOptions Opts(const std::string& mode) {
  SocketOptions o;
  o.shm.mode = mode == "off" ? ShmMode::kOff : ShmMode::kAuto;
  return o;
}

int Push(const std::string& endpoint, uint64_t n, const std::string& mode, bool hold) {
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto sock = Socket::Create(*ctx, SocketType::kDealer, Opts(mode));
  if (!sock.ok() || !(*sock)->Connect(endpoint).ok()) return testing::kPeerCallFailed;
  if (mode == "auto") {
    // The handshake runs inside Recv: pump until the channel is up.
    Deadline d = Deadline::FromMillis(20000);
    while ((*sock)->shm_state() != "on" && !d.Expired()) (*sock)->Recv(Deadline::FromMillis(10)).status().IgnoreError();
    if ((*sock)->shm_state() != "on") {
      fprintf(stderr, "shm_peer: channel %s\n", (*sock)->shm_state().c_str());
      return testing::kPeerWrongPath;
    }
  }
  Buffer values = Buffer::Allocate(n);
  for (uint64_t i = 0; i < n; ++i) values.as<std::byte>()[i] = PeerByte(i);
  OutMessage push(Op::PUSH);
  auto d = push.header().getBody().initData();
  d.setParamId(3);
  d.setBegin(0);
  d.setEnd(n / 4);
  if (!push.AddPayload(values, DType::kF32, n / 4).ok()) return testing::kPeerBadArgs;
  Result<InMessage> reply = Call(**sock, std::move(push), Deadline::FromMillis(60000));
  if (!reply.ok()) {
    fprintf(stderr, "shm_peer: %s\n", reply.status().ToString().c_str());
    return testing::kPeerCallFailed;
  }
  if (reply->num_payloads() != 1 || reply->payload(0).size() != n) return testing::kPeerMismatch;
  const std::byte* got = reply->payload(0).data();
  for (uint64_t i = 0; i < n; ++i) {
    if (got[i] != (PeerByte(i) ^ testing::kReplyMask)) return testing::kPeerMismatch;
  }
  const ShmStats s = (*sock)->shm_stats();
  const bool via_shm = s.shm_bytes_sent == n && s.tcp_bytes_sent == 0 && s.shm_bytes_received == n &&
                       s.tcp_bytes_received == 0;
  const bool via_tcp = s.shm_bytes_sent == 0 && s.tcp_bytes_sent == n && s.shm_bytes_received == 0 &&
                       s.tcp_bytes_received == n;
  if (!(mode == "auto" ? via_shm : via_tcp)) {
    fprintf(stderr, "shm_peer: sent shm %llu tcp %llu, received shm %llu tcp %llu\n",
            static_cast<unsigned long long>(s.shm_bytes_sent), static_cast<unsigned long long>(s.tcp_bytes_sent),
            static_cast<unsigned long long>(s.shm_bytes_received),
            static_cast<unsigned long long>(s.tcp_bytes_received));
    return testing::kPeerWrongPath;
  }
  if (hold) {
    printf("held\n");
    fflush(stdout);
    sleep(60);
  }
  return testing::kPeerOk;
}

int Stall(const std::string& endpoint, uint64_t n) {
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto sock = Socket::Create(*ctx, SocketType::kDealer, Opts("auto"));
  if (!sock.ok() || !(*sock)->Connect(endpoint).ok()) return testing::kPeerCallFailed;
  Deadline d = Deadline::FromMillis(20000);
  while (!(*sock)->TEST_shm()->streams() && !d.Expired()) (*sock)->Recv(Deadline::FromMillis(10)).status().IgnoreError();
  if (!(*sock)->TEST_shm()->streams()) return testing::kPeerWrongPath;
  Buffer values = Buffer::Allocate(n);
  OutMessage m(Op::PUSH_PULL);
  auto data = m.header().getBody().initData();
  data.setParamId(3);
  data.setBegin(0);
  data.setEnd(n / 4);
  if (!m.AddPayload(values, DType::kF32, n / 4).ok()) return testing::kPeerBadArgs;
  m.set_streamable(true);
  TEST_ForgeNextStreamProgress(4096);
  if (!(*sock)->Send(std::move(m)).ok()) return testing::kPeerCallFailed;
  printf("sent\n");
  fflush(stdout);
  sleep(60);
  return testing::kPeerOk;
}

int Serve(const std::string& mode) {
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto sock = Socket::Create(*ctx, SocketType::kRouter, Opts(mode));
  if (!sock.ok()) return testing::kPeerCallFailed;
  Result<std::string> ep = (*sock)->Bind("tcp://127.0.0.1:*");
  if (!ep.ok()) return testing::kPeerCallFailed;
  printf("endpoint=%s\n", ep->c_str());
  fflush(stdout);
  Deadline d = Deadline::FromMillis(60000);
  while (!d.Expired()) {
    Result<InMessage> req = (*sock)->Recv(Deadline::FromMillis(100));
    if (!req.ok() || req->num_payloads() != 1) continue;
    const size_t n = req->payload(0).size();
    Buffer back = Buffer::Allocate(n);
    for (size_t i = 0; i < n; ++i) back.as<std::byte>()[i] = req->payload(0)[i] ^ testing::kReplyMask;
    OutMessage rep = MakeReply(*req, Op::RESPONSE);
    rep.header().getBody().initResponse().setParamId(3);
    if (!rep.AddPayload(back, DType::kF32, n / 4).ok()) return testing::kPeerBadArgs;
    (*sock)->Send(std::move(rep)).IgnoreError();
  }
  return testing::kPeerOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "push" && (argc == 5 || argc == 6)) {
    const uint64_t n = std::strtoull(argv[3], nullptr, 10) / 4 * 4;
    return Push(argv[2], n, argv[4], argc == 6 && std::string(argv[5]) == "hold");
  }
  if (cmd == "serve" && argc == 3) return Serve(argv[2]);
  if (cmd == "stall" && argc == 4) return Stall(argv[2], std::strtoull(argv[3], nullptr, 10) / 4 * 4);
  fprintf(stderr, "usage: shm_peer push <endpoint> <bytes> <auto|off> [hold] | shm_peer serve <auto|off>\n");
  return testing::kPeerBadArgs;
}
