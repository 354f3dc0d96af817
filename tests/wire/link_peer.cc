// link_peer: the other process of link_process_test (wire/local_link.h).
//
//   link_peer serve
//     ROUTER on a Reactor: binds tcp://127.0.0.1:*, prints "endpoint=<ep>", echoes
//     every request (payloads XOR kReplyMask) for up to 60 s (the test kills it).
//   link_peer client <endpoint>
//     DEALER on a Reactor: waits for its local link, makes one 1 MiB push+pull over it,
//     prints "on" and sleeps (the test kills it with -9).
//   link_peer foreign <name>
//     Drops to uid/gid 65534 (nobody), connects to the abstract socket @<name> and writes
//     a 16-byte nonce of zeros: a local process of another user. Exits 0 once written.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>

#include <cstdio>
#include <cstring>
#include <string>

#include "tests/wire/link_util.h"

using namespace tessera;
using namespace tessera::wire;

namespace {

SocketOptions Opts() {
  SocketOptions o;
  o.shm.mode = ShmMode::kAuto;
  o.stamp_sender = true;  // auth=mac: the sender is the session's identity
  return o;
}

int Serve() {
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto server = testing::EchoServer::Start(*ctx, Opts());
  if (server == nullptr) return testing::kPeerCallFailed;
  printf("endpoint=%s\n", server->endpoint.c_str());
  fflush(stdout);
  sleep(60);
  return testing::kPeerOk;
}

int Client(const std::string& endpoint) {
  auto ctx = Context::Create();
  if (!ctx.ok()) return testing::kPeerCallFailed;
  auto client = testing::LinkClient::Start(*ctx, Opts(), endpoint);
  if (client == nullptr) return testing::kPeerCallFailed;
  if (!client->WaitLinkState("on")) return testing::kPeerWrongPath;
  Result<InMessage> r = client->Call(testing::PushPull(1, 1 << 20, true));
  if (!r.ok() || !r->AwaitPayloads(std::chrono::seconds(10)).ok()) return testing::kPeerCallFailed;
  if (r->payload(0)[5] != (testing::PeerByte(5) ^ testing::kReplyMask)) return testing::kPeerMismatch;
  printf("on\n");
  fflush(stdout);
  sleep(60);
  return testing::kPeerOk;
}

int Foreign(const std::string& name) {
  if (setgid(65534) != 0 || setuid(65534) != 0) return testing::kPeerBadArgs;
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (fd < 0 || name.size() + 1 >= sizeof(a.sun_path)) return testing::kPeerCallFailed;
  memcpy(a.sun_path + 1, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) return testing::kPeerCallFailed;
  const char nonce[16] = {};
  if (write(fd, nonce, sizeof(nonce)) != static_cast<ssize_t>(sizeof(nonce))) return testing::kPeerCallFailed;
  return testing::kPeerOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "serve" && argc == 2) return Serve();
  if (cmd == "client" && argc == 3) return Client(argv[2]);
  if (cmd == "foreign" && argc == 3) return Foreign(argv[2]);
  fprintf(stderr, "usage: link_peer serve | client <endpoint> | foreign <name>\n");
  return testing::kPeerBadArgs;
}
