// MetricsHttpServer: the coordinator's GET /metrics endpoint (Prometheus text format,
// --metrics_port). A minimal HTTP/1.1 server written here rather than a library: it
// answers one path with one body and closes every connection, which is ~150 lines of
// plain sockets, while libmicrohttpd / civetweb / cpp-httplib (all in Debian 12) would
// add a build dependency to every CI configuration (CPU, CUDA, ASan, TSan) for that.
//
// Requests: GET or HEAD /metrics -> 200 with the body; another path -> 404; another
// method -> 405; a request line that is not `METHOD TARGET HTTP/1.x` or a header
// section over 8 KiB -> 400. Every response closes the connection. A client that sends
// nothing for 2 s is dropped. Connections are served one at a time.
//
// Threading: the server owns one thread ("tessera-http"), which owns the listening
// socket and every connection. `render` runs on that thread (MetricsStore::
// PrometheusText takes its own lock), so the coordinator's reactor never waits on a
// client. The destructor stops and joins the thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace tessera {

class MetricsHttpServer {
 public:
  // Binds `host` (an IPv4 address or "localhost") and `port` (0: any free port).
  // InvalidArgument naming --metrics_bind for a bad address; Unavailable naming the
  // address when it cannot be bound.
  static Result<std::unique_ptr<MetricsHttpServer>> Start(const std::string& host, int port,
                                                          std::function<std::string()> render);
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  int port() const { return port_; }
  uint64_t requests() const { return requests_.load(); }
  uint64_t bad_requests() const { return bad_requests_.load(); }

 private:
  MetricsHttpServer(int listen_fd, int wake_fd, int port, std::function<std::string()> render);
  void Loop();
  void Serve(int fd);

  const int listen_fd_;
  const int wake_fd_;  // eventfd: the destructor wakes the loop
  const int port_;
  const std::function<std::string()> render_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> bad_requests_{0};
  std::thread thread_;
};

}  // namespace tessera
