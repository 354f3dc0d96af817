#include "coordinator/metrics_http.h"

#include <arpa/inet.h>
#include <glog/logging.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/clock.h"

namespace tessera {

namespace {

constexpr size_t kMaxHeaderBytes = 8192;
constexpr int kClientTimeoutMs = 2000;

std::string Errno() { return std::strerror(errno); }

void SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client left or stalled past SO_SNDTIMEO
    off += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const std::string& content_type, const std::string& body,
                     bool head) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n";
  r += "Content-Type: " + content_type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (code == 405) r += "Allow: GET, HEAD\r\n";
  r += "Connection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& host, int port,
                                                                    std::function<std::string()> render) {
  if (port < 0 || port > 65535) return Status::InvalidArgument("--metrics_port=" + std::to_string(port) + ": not a port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string ip = host == "localhost" ? "127.0.0.1" : host;
  if (inet_pton(AF_INET, ip.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument("--metrics_bind=" + host + ": not an IPv4 address (e.g. 127.0.0.1 or 0.0.0.0)");
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable("metrics endpoint: socket: " + Errno());
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const std::string where = ip + ":" + std::to_string(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0) {
    Status st = Status::Unavailable("metrics endpoint: cannot listen on " + where + ": " + Errno());
    ::close(fd);
    return st;
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    ::close(fd);
    return Status::Unavailable("metrics endpoint: eventfd: " + Errno());
  }
  std::unique_ptr<MetricsHttpServer> s(new MetricsHttpServer(fd, wake, ntohs(addr.sin_port), std::move(render)));
  s->thread_ = std::thread([p = s.get()] {
    pthread_setname_np(pthread_self(), "tessera-http");
    p->Loop();
  });
  return s;
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int wake_fd, int port, std::function<std::string()> render)
    : listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port), render_(std::move(render)) {}

MetricsHttpServer::~MetricsHttpServer() {
  stop_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fd_);
}

void MetricsHttpServer::Loop() {
  while (!stop_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      LOG(ERROR) << "metrics endpoint: poll: " << Errno() << "; stopping it";
      return;
    }
    if (stop_ || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;  // the client gave up, or out of descriptors: try again later
    timeval tv{kClientTimeoutMs / 1000, (kClientTimeoutMs % 1000) * 1000};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Serve(c);
    // Read what the client still sends before closing: closing with unread input makes
    // the kernel reset the connection, which can destroy the response in flight.
    ::shutdown(c, SHUT_WR);
    char sink[4096];
    for (size_t drained = 0; drained < (1u << 20);) {
      ssize_t n = ::recv(c, sink, sizeof(sink), 0);
      if (n <= 0) break;
      drained += static_cast<size_t>(n);
    }
    ::close(c);
  }
}

void MetricsHttpServer::Serve(int fd) {
  ++requests_;
  std::string req;
  const auto deadline = Clock::now() + std::chrono::milliseconds(kClientTimeoutMs);
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos) {
    if (req.size() > kMaxHeaderBytes || Clock::now() > deadline) break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  auto bad = [&](const char* why) {
    ++bad_requests_;
    VLOG(1) << "metrics endpoint: bad request (" << why << ")";
    SendAll(fd, Response(400, "Bad Request", "text/plain", std::string(why) + "\n", false));
  };
  const size_t eol = req.find_first_of("\r\n");
  if (eol == std::string::npos || req.size() > kMaxHeaderBytes) {
    if (req.empty()) return;  // connected and said nothing: nobody to answer
    return bad(req.size() > kMaxHeaderBytes ? "request header too large" : "incomplete request");
  }
  const std::string line = req.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos || line.find(' ', sp2 + 1) != std::string::npos) {
    return bad("expected `METHOD TARGET HTTP/1.x`");
  }
  const std::string method = line.substr(0, sp1);
  std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string version = line.substr(sp2 + 1);
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return bad("unsupported HTTP version");
  if (method.empty() || target.empty() || target[0] != '/') return bad("the target must be a path");
  for (char ch : method) {
    if (ch < 'A' || ch > 'Z') return bad("malformed method");
  }
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendAll(fd, Response(405, "Method Not Allowed", "text/plain", "only GET and HEAD\n", false));
    return;
  }
  target = target.substr(0, target.find('?'));
  if (target != "/metrics") {
    SendAll(fd, Response(404, "Not Found", "text/plain", "not found: the metrics are at /metrics\n", head));
    return;
  }
  SendAll(fd, Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", render_(), head));
}

}  // namespace tessera
