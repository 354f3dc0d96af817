// Helpers of the local-link tests (tests/wire/link_test.cc, link_peer.cc): an echo
// ROUTER and a DEALER client, each owned by a real Reactor (only reactor-polled sockets
// use the link), over real ZeroMQ sockets on 127.0.0.1.
//
// Threading: each helper's socket belongs to its reactor's loop thread; the test thread
// talks to it only through Post (and the futures / mutex-guarded records below).
#pragma once

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/wire/peer_protocol.h"
#include "wire/reactor.h"
#include "wire/socket.h"

namespace tessera::wire::testing {

// What a received message looked like: enough to compare two runs bit for bit.
struct Seen {
  Op op;
  uint64_t request_id;
  uint32_t param_id;
  std::vector<std::byte> bytes;  // every payload, concatenated
  bool operator==(const Seen&) const = default;
};

inline Seen Record(InMessage& m) {
  Seen s{m.op(), m.request_id(), 0, {}};
  if (m.op() != Op::ERROR) {
    auto b = m.header().getBody();
    if (b.isData()) s.param_id = b.getData().getParamId();
    if (b.isResponse()) s.param_id = b.getResponse().getParamId();
  }
  for (size_t i = 0; i < m.num_payloads(); ++i) s.bytes.insert(s.bytes.end(), m.payload(i).begin(), m.payload(i).end());
  return s;
}

// Runs `fn` on `r`'s loop thread and waits for its result.
template <typename F>
auto OnLoop(Reactor& r, F fn) -> decltype(fn()) {
  std::promise<decltype(fn())> p;
  auto f = p.get_future();
  r.Post([&] { p.set_value(fn()); });
  return f.get();
}

// ROUTER answering every request with its payloads XOR kReplyMask (waiting for
// streamed ones first), and recording what it received.
class EchoServer {
 public:
  static std::unique_ptr<EchoServer> Start(std::shared_ptr<Context> ctx, SocketOptions o) {
    auto s = std::unique_ptr<EchoServer>(new EchoServer());
    auto r = Reactor::Create();
    if (!r.ok()) return nullptr;
    s->reactor = std::move(r).value();
    o.shm.accept_streamed = true;
    auto sock = Socket::Create(std::move(ctx), SocketType::kRouter, o);
    if (!sock.ok()) return nullptr;
    auto ep = (*sock)->Bind("tcp://127.0.0.1:*");
    if (!ep.ok()) return nullptr;
    s->endpoint = *ep;
    EchoServer* self = s.get();
    s->sock = s->reactor->AddSocket(std::move(sock).value(),
                                    [self](Socket& k, InMessage&& m) { self->OnRequest(k, std::move(m)); });
    if (!s->reactor->Start().ok()) return nullptr;
    return s;
  }
  ~EchoServer() { reactor->Stop(); }

  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> l(mu);
    return seen_;
  }

  std::unique_ptr<Reactor> reactor;
  Socket* sock = nullptr;
  std::string endpoint;
  std::mutex mu;

 private:
  EchoServer() = default;
  void OnRequest(Socket& k, InMessage&& m) {
    if (!m.AwaitPayloads(std::chrono::seconds(10)).ok()) return;
    {
      std::lock_guard<std::mutex> l(mu);
      seen_.push_back(Record(m));
    }
    OutMessage rep = MakeReply(m, Op::RESPONSE);
    rep.header().getBody().initResponse().setParamId(m.header().getBody().getData().getParamId());
    for (size_t i = 0; i < m.num_payloads(); ++i) {
      const size_t n = m.payload(i).size();
      Buffer back = k.AllocatePayload(m.routing_id(), n);
      for (size_t j = 0; j < n; ++j) back.as<std::byte>()[j] = m.payload(i)[j] ^ kReplyMask;
      if (!rep.AddPayload(back, DType::kF32, n / 4).ok()) return;
    }
    k.Send(std::move(rep)).IgnoreError();
  }
  std::vector<Seen> seen_;
};

// DEALER with calls by request id; errors the socket reports (a lost link) are kept.
class LinkClient {
 public:
  static std::unique_ptr<LinkClient> Start(std::shared_ptr<Context> ctx, SocketOptions o, const std::string& ep) {
    auto c = std::unique_ptr<LinkClient>(new LinkClient());
    auto r = Reactor::Create();
    if (!r.ok()) return nullptr;
    c->reactor = std::move(r).value();
    o.shm.accept_streamed = true;
    auto sock = Socket::Create(std::move(ctx), SocketType::kDealer, o);
    if (!sock.ok() || !(*sock)->Connect(ep).ok()) return nullptr;
    LinkClient* self = c.get();
    c->sock = c->reactor->AddSocket(
        std::move(sock).value(), [self](Socket&, InMessage&& m) { self->OnReply(std::move(m)); },
        [self](Socket&, const Status& st) {
          std::lock_guard<std::mutex> l(self->mu);
          self->errors.push_back(st);
          for (auto& [id, p] : self->pending) p.set_value(st);
          self->pending.clear();
        });
    if (!c->reactor->Start().ok()) return nullptr;
    return c;
  }
  ~LinkClient() { reactor->Stop(); }

  // Sends `m` (its request id set by the caller) from the loop; the future completes
  // with the reply or the socket's error.
  std::future<Result<InMessage>> Send(OutMessage m) {
    auto p = std::make_shared<std::promise<Result<InMessage>>>();
    auto f = p->get_future();
    const uint64_t id = m.request_id();
    {
      std::lock_guard<std::mutex> l(mu);
      pending.emplace(id, std::move(*p));
    }
    reactor->Post([this, id, m = std::make_shared<OutMessage>(std::move(m))]() mutable {
      Status st = sock->Send(std::move(*m));
      if (st.ok()) return;
      std::lock_guard<std::mutex> l(mu);
      auto it = pending.find(id);
      if (it != pending.end()) {
        it->second.set_value(st);
        pending.erase(it);
      }
    });
    return f;
  }
  Result<InMessage> Call(OutMessage m, int ms = 20000) {
    auto f = Send(std::move(m));
    if (f.wait_for(std::chrono::milliseconds(ms)) != std::future_status::ready) return Status::TimedOut("no reply");
    return f.get();
  }
  // Waits until the link state is `want` (polled on the loop).
  bool WaitLinkState(const std::string& want, int ms = 20000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      if (OnLoop(*reactor, [&] { return sock->link_state(); }) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::unique_ptr<Reactor> reactor;
  Socket* sock = nullptr;
  std::mutex mu;
  std::map<uint64_t, std::promise<Result<InMessage>>> pending;
  std::vector<Status> errors;
  std::vector<uint64_t> reply_order;

 private:
  LinkClient() = default;
  void OnReply(InMessage&& m) {
    std::lock_guard<std::mutex> l(mu);
    reply_order.push_back(m.request_id());
    auto it = pending.find(m.request_id());
    if (it == pending.end()) return;
    it->second.set_value(std::move(m));
    pending.erase(it);
  }
};

// A push+pull of `n` PeerByte-patterned bytes as one f32 payload (n a multiple of 4).
inline OutMessage PushPull(uint64_t id, size_t n, bool streamable, size_t salt = 0) {
  OutMessage m(Op::PUSH_PULL);
  m.SetRequestId(id);
  auto d = m.header().getBody().initData();
  d.setParamId(7);
  d.setBegin(0);
  d.setEnd(n / 4);
  Buffer b = Buffer::Allocate(n);
  for (size_t i = 0; i < n; ++i) b.as<std::byte>()[i] = PeerByte(i + salt);
  if (!m.AddPayload(b, DType::kF32, n / 4).ok()) return m;
  m.set_streamable(streamable);
  return m;
}

}  // namespace tessera::wire::testing
