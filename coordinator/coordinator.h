// Coordinator: the control plane of one job. Accepts registrations of S servers and W
// workers, collects the model's parameter declarations, publishes the versioned shard
// map (servers first; workers once every server holds its shards), runs barriers and
// the step clock, detects silent peers by heartbeat, and ends the job: cleanly when all
// workers finished, or with a Shutdown naming the failure sent to everyone.
//
// Protocol (docs/protocol.md): peer -> register -> welcome; worker -> declareParams ->
// response; coordinator -> shardMap -> server replies response; coordinator -> shardMap
// -> workers; heartbeats both ways; worker -> shutdown(exitCode) when done.
//
// Threading: one reactor thread ("tessera-reactor") owns the ROUTER socket and every
// piece of state below; Wait() and Abort() may be called from any thread. With
// --metrics_port the HTTP thread (coordinator/metrics_http.h) reads metrics_store_,
// which has its own lock; it touches nothing else.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/cluster/job_outcome.h"
#include "common/cluster/shard_map.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "coordinator/checkpoint_driver.h"
#include "coordinator/membership.h"
#include "coordinator/rendezvous_store.h"
#include "coordinator/metrics_http.h"
#include "coordinator/metrics_store.h"
#include "coordinator/stall_inspector.h"
#include "wire/reactor.h"

namespace tessera {

struct CoordinatorOptions {
  // Where peers connect. "tcp://127.0.0.1:*" picks a free port. Default: loopback, any port.
  std::string bind = "tcp://127.0.0.1:*";
  // A TCP socket already bound to `bind`'s address and listening, inherited from the
  // launcher (LaunchInfo::coordinator_listen_fd); the coordinator takes it over instead
  // of binding its own. Default: -1 (bind `bind`).
  int listen_fd = -1;
  uint64_t job_id = 0;                   // every peer must present it (0: accept any)
  int num_servers = 1;
  int num_workers = 1;
  // A registered peer silent this long is declared dead. Default: 10 s.
  Duration heartbeat_timeout = std::chrono::seconds(10);
  // How often peers are told to heartbeat. Default: 500 ms.
  Duration heartbeat_interval = std::chrono::milliseconds(500);
  // Everyone must have registered and declared by then. Default: 120 s.
  Duration register_timeout = std::chrono::seconds(120);
  // Chunking, sync mode and gradient reduction for the shard map.
  ShardMapOptions shard;
  // When a worker holding up a step is named, and when the job ends over it.
  StallOptions stall;
  // Checkpoints, resume and preemption (docs/checkpoints.md). Default: off.
  CheckpointOptions checkpoint;
  // Metrics (docs/metrics.md). Default: off.
  struct Metrics {
    std::string out;          // --metrics_out: append rank_metrics lines here ("": none)
    int port = 0;             // --metrics_port: serve GET /metrics (0: off)
    std::string bind = "127.0.0.1";  // --metrics_bind
  } metrics;
};

class Coordinator {
 public:
  // Binds and starts serving. Fails when the endpoint cannot be bound.
  static Result<std::unique_ptr<Coordinator>> Start(CoordinatorOptions options,
                                                    std::shared_ptr<wire::Context> ctx);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The endpoint actually bound ("tcp://127.0.0.1:43127").
  const std::string& endpoint() const { return endpoint_; }
  // The port GET /metrics is served on (0: off).
  int metrics_port() const { return http_ ? http_->port() : 0; }

  // Blocks until the job has ended (or `timeout` passes: TimedOut outcome, job still
  // running), then stops the reactor once the final Shutdown messages are out.
  JobOutcome Wait(Duration timeout = std::chrono::hours(24 * 365));

  // Ends the job from outside (a signal): every peer gets Shutdown(exit_code, reason).
  void Abort(const std::string& reason, int exit_code);

  // SIGTERM/SIGUSR1 to this process: checkpoint at the next step boundary, then end the
  // job with kExitPreempted; urgent (a second signal): end it now with that code.
  void Preempt(int signal, bool urgent);

 private:
  Coordinator(CoordinatorOptions options, std::unique_ptr<wire::Reactor> reactor);

  // Loop thread only.
  void OnMessage(wire::Socket& sock, wire::InMessage&& msg);
  void OnRegister(wire::Socket& sock, const wire::InMessage& msg);
  void OnDeclareParams(wire::Socket& sock, const wire::InMessage& msg, Member& m);
  void OnServerReady(const wire::InMessage& msg, Member& m);
  void OnBarrier(wire::Socket& sock, const wire::InMessage& msg, Member& m);
  void OnShutdown(const wire::InMessage& msg, Member& m);
  void OnStatus(wire::Socket& sock, const wire::InMessage& msg);
  void OnRendezvous(wire::Socket& sock, const wire::InMessage& msg, const Member& m);
  void MaybePublishToServers();
  void PublishToWorkers();
  void CheckHeartbeats();
  void CheckStall();
  void CheckRegistrationDeadline();
  void OnMetricsTick();  // coordinator/coordinator_metrics.cc
  void FillStatus(wire::capnp::JobStatus::Builder js);
  void Finish(Status status, int exit_code);
  void SendShutdown(const Member& m, const std::string& reason, int exit_code);
  wire::OutMessage NewMessage(wire::Op op);

  // Constant after construction.
  const CoordinatorOptions options_;
  std::unique_ptr<wire::Reactor> reactor_;
  std::string endpoint_;
  wire::Socket* socket_ = nullptr;  // owned by reactor_; loop thread only

  // Loop thread only.
  std::unique_ptr<CheckpointDriver> checkpoints_;
  RendezvousStore rendezvous_;
  Membership members_;
  std::vector<ParamSpec> params_;
  std::vector<bool> declared_;        // per worker index
  std::unique_ptr<ShardMap> map_;
  std::vector<bool> server_ready_;    // per server index
  bool published_to_workers_ = false;
  bool finished_ = false;
  StallInspector stall_{options_.stall};
  std::vector<std::string> barrier_waiting_;  // routing ids waiting in the current barrier
  std::vector<wire::OutMessage> pending_barrier_replies_;
  uint64_t barrier_id_ = 0;
  int64_t barrier_final_step_ = -1;  // the largest finalStep of the current barrier's waiters
  uint64_t next_request_id_ = 0;
  Clock::time_point started_ = Clock::now();
  Clock::time_point last_metrics_tick_{};
  int64_t seen_checkpoint_step_ = -1;
  int64_t checkpoint_seen_unix_ms_ = 0;
  int metrics_fd_ = -1;               // --metrics_out (O_APPEND), opened at the first rank line
  bool metrics_out_failed_ = false;

  // Own lock (see the threading note above); the HTTP server reads it.
  MetricsStore metrics_store_;
  std::unique_ptr<MetricsHttpServer> http_;  // after metrics_store_: stopped first

  // State below is protected by mu_.
  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ GUARDED_BY(mu_) = false;
  JobOutcome outcome_ GUARDED_BY(mu_);
};

}  // namespace tessera
