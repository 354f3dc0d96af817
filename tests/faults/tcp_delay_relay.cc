#include "tests/faults/tcp_delay_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tessera::testing {
namespace {

Status Errno(const std::string& what) { return Status::IOError(what + ": " + std::strerror(errno)); }

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// The relay's own hop must add nothing beyond the configured delay.
void NoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

Result<std::unique_ptr<TcpDelayRelay>> TcpDelayRelay::Start(int listen_port, int target_port,
                                                            std::chrono::milliseconds delay) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("relay socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(listen_port);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 64) != 0) {
    Status st = Errno("relay bind/listen on 127.0.0.1:" + std::to_string(listen_port));
    close(fd);
    return st;
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::unique_ptr<TcpDelayRelay> r(new TcpDelayRelay(fd, ntohs(a.sin_port), target_port, delay));
  r->accept_thread_ = std::thread([p = r.get()] { p->AcceptLoop(); });
  return r;
}

TcpDelayRelay::TcpDelayRelay(int listen_fd, int port, int target_port, std::chrono::milliseconds delay)
    : listen_fd_(listen_fd), port_(port), target_port_(target_port), delay_(delay) {}

TcpDelayRelay::~TcpDelayRelay() {
  Stop();
  close(listen_fd_);
}

TcpDelayRelay::Pair::~Pair() {
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  if (client_fd >= 0) close(client_fd);
  if (target_fd >= 0) close(target_fd);
}

void TcpDelayRelay::Stop() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::unique_ptr<Pair>> pairs;
  {
    std::lock_guard<std::mutex> l(pairs_mu_);
    pairs.swap(pairs_);
  }
  for (auto& p : pairs) {
    shutdown(p->client_fd, SHUT_RDWR);
    shutdown(p->target_fd, SHUT_RDWR);
    ClosePipe(&p->up);
    ClosePipe(&p->down);
  }
  pairs.clear();  // joins each pair's threads, then closes its sockets
}

void TcpDelayRelay::ClosePipe(Pipe* p) {
  std::lock_guard<std::mutex> l(p->mu);
  p->closed = true;
  p->cv.notify_all();
}

void TcpDelayRelay::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd pfd{listen_fd_, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(target_port_);
    if (t < 0 || connect(t, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      // The client sees its connection closed, as if the target had refused it.
      if (t >= 0) close(t);
      close(c);
      continue;
    }
    NoDelay(c);
    NoDelay(t);
    auto pair = std::make_unique<Pair>();
    pair->client_fd = c;
    pair->target_fd = t;
    Pair* p = pair.get();
    p->threads.emplace_back([this, p] { ReadLoop(p->client_fd, &p->up, p); });
    p->threads.emplace_back([this, p] { WriteLoop(p->target_fd, &p->up, p, &to_target_); });
    p->threads.emplace_back([this, p] { ReadLoop(p->target_fd, &p->down, p); });
    p->threads.emplace_back([this, p] { WriteLoop(p->client_fd, &p->down, p, &to_client_); });
    connections_.fetch_add(1);
    std::lock_guard<std::mutex> l(pairs_mu_);
    pairs_.push_back(std::move(pair));
  }
}

void TcpDelayRelay::ReadLoop(int from, Pipe* pipe, Pair* pair) {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = read(from, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    Chunk c{std::chrono::steady_clock::now() + delay_, n > 0 ? std::string(buf, static_cast<size_t>(n)) : ""};
    if (n < 0) {
      // A reset on one side resets the whole pair, as a real path would.
      shutdown(pair->client_fd, SHUT_RDWR);
      shutdown(pair->target_fd, SHUT_RDWR);
      ClosePipe(&pair->up);
      ClosePipe(&pair->down);
      return;
    }
    std::lock_guard<std::mutex> l(pipe->mu);
    pipe->queue.push_back(std::move(c));
    pipe->cv.notify_all();
    if (n == 0) return;  // end of file travels (delayed) to the other side
  }
}

void TcpDelayRelay::WriteLoop(int to, Pipe* pipe, Pair* pair, std::atomic<uint64_t>* counter) {
  for (;;) {
    Chunk c;
    {
      std::unique_lock<std::mutex> l(pipe->mu);
      pipe->cv.wait(l, [&] { return pipe->closed || !pipe->queue.empty(); });
      if (pipe->closed) return;
      // Chunks are due in the order they were read: wait for the oldest one.
      const auto due = pipe->queue.front().due;
      if (pipe->cv.wait_until(l, due, [&] { return pipe->closed; })) return;
      c = std::move(pipe->queue.front());
      pipe->queue.pop_front();
    }
    if (c.bytes.empty()) {
      shutdown(to, SHUT_WR);
      return;
    }
    size_t off = 0;
    while (off < c.bytes.size()) {
      const ssize_t n = send(to, c.bytes.data() + off, c.bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        shutdown(pair->client_fd, SHUT_RDWR);
        shutdown(pair->target_fd, SHUT_RDWR);
        ClosePipe(&pair->up);
        ClosePipe(&pair->down);
        return;
      }
      off += static_cast<size_t>(n);
      counter->fetch_add(static_cast<uint64_t>(n));
    }
  }
}

}  // namespace tessera::testing
