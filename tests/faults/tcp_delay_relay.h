// A user-space TCP relay that adds latency, for fault tests on a kernel without netem:
// it listens on 127.0.0.1:<listen_port>, and for every accepted connection opens one to
// 127.0.0.1:<target_port> and forwards bytes both ways, each chunk held back until
// `delay` after it was read (chunks stay in order; the delay is per direction, so a
// round trip gains 2 x delay). The relay connects to the target only when a client
// arrives, so the target may start after the relay.
//
// Threads: Start() spawns one accept thread; every connection pair gets one reader and
// one writer thread per direction. A reader owns reading from its source socket and
// hands chunks to its writer through a mutex-guarded queue; the writer owns writing to
// the destination. The file descriptors are owned by the Pair object and closed after
// all four of its threads have ended. Stop() (or the destructor) shuts every socket
// down and joins every thread. The counters are atomics, readable from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace tessera::testing {

class TcpDelayRelay {
 public:
  // Binds 127.0.0.1:listen_port (0: any free port, see port()) and starts accepting.
  static Result<std::unique_ptr<TcpDelayRelay>> Start(int listen_port, int target_port,
                                                      std::chrono::milliseconds delay);
  ~TcpDelayRelay();
  TcpDelayRelay(const TcpDelayRelay&) = delete;
  TcpDelayRelay& operator=(const TcpDelayRelay&) = delete;

  void Stop();
  int port() const { return port_; }
  // Bytes delivered client -> target and target -> client, and connections accepted.
  uint64_t bytes_to_target() const { return to_target_.load(); }
  uint64_t bytes_to_client() const { return to_client_.load(); }
  int connections() const { return connections_.load(); }

 private:
  struct Chunk {
    std::chrono::steady_clock::time_point due;
    std::string bytes;  // empty: the source reached end of file
  };
  // One direction of a connection pair.
  struct Pipe {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Chunk> queue;
    bool closed = false;  // the writer must stop (error or Stop())
  };
  struct Pair {
    int client_fd = -1;
    int target_fd = -1;
    Pipe up, down;  // up: client -> target
    std::vector<std::thread> threads;
    ~Pair();
  };

  TcpDelayRelay(int listen_fd, int port, int target_port, std::chrono::milliseconds delay);
  void AcceptLoop();
  void ReadLoop(int from, Pipe* pipe, Pair* pair);
  void WriteLoop(int to, Pipe* pipe, Pair* pair, std::atomic<uint64_t>* counter);
  static void ClosePipe(Pipe* p);

  const int listen_fd_;
  const int port_;
  const int target_port_;
  const std::chrono::milliseconds delay_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> to_target_{0}, to_client_{0};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  std::mutex pairs_mu_;  // guards pairs_ (the accept thread adds, Stop() drains)
  std::vector<std::unique_ptr<Pair>> pairs_;
};

}  // namespace tessera::testing
