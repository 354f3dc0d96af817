// ParamServer: one parameter server process's loop. Registers with the coordinator,
// receives the shard map, creates its shards (ParamServerCore), then serves push, pull
// and pushPull requests from workers on its own ROUTER socket until the coordinator
// says Shutdown, or goes silent for longer than the heartbeat timeout.
//
// A bad request never stops the server: ParamServerCore's refusal becomes an error
// reply and the loop takes the next message. A pull that the sync policy does not allow
// yet (bsp: the previous step's update is not applied) is parked and answered after the
// push that makes it ready.
//
// Threading: one reactor thread owns both sockets, the core, and the parked pulls.
// Wait() may be called from any thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/cluster/job_outcome.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "checkpoint/shard_db.h"
#include "checkpoint/table_budget.h"
#include "paramserver/checkpoint_participant.h"
#include "paramserver/request_decode.h"
#include "paramserver/server_core.h"
#include "wire/metrics_wire.h"
#include "wire/reactor.h"

namespace tessera::paramserver {

// Every sparse table's TablePolicy (shard_store.h), with per-table memory limits by name.
struct TableLimits {
  TablePolicy policy;
  std::map<std::string, uint64_t> memory_limits;  // table name -> its memory_limit
  // The memory flags' text: which server count the limits are per (policy.memory_servers)
  // is resolved against the checkpoint a resume loads (checkpoint/table_budget.h).
  checkpoint::TableBudgetFlags budget_flags;
};

struct ServerOptions {
  std::string coordinator;                 // "tcp://127.0.0.1:5555"
  uint64_t job_id = 0;
  int rank = 1;                            // 1..num_servers
  int num_servers = 1;
  int num_workers = 1;
  // Data-plane endpoint to bind. Default: loopback, any port.
  std::string bind = "tcp://127.0.0.1:*";
  // Host name workers use to reach this server (replaces a wildcard bind address).
  // Default: "" (use the bound address as is).
  std::string advertise_host;
  // Port workers use to reach this server, when something (a relay, a port forward)
  // sits in front of the bound port (--advertise_data_port). Default: 0 (the bound port).
  int advertise_port = 0;
  // Peers that have not registered and received a shard map by then give up. Default: 120 s.
  Duration register_timeout = std::chrono::seconds(120);
  AggregatorOptions aggregator;
  // Requests queued per worker connection before ZeroMQ pushes back. Default: 1000.
  int max_inflight = 1000;
  // Reply bytes the data socket's outbox keeps for workers that do not read
  // (--server_outbox_bytes; wire::SocketOptions::outbox_max_bytes; 0: no bound).
  // Default: 1 GiB.
  uint64_t outbox_bytes = uint64_t{1} << 30;
  // How checkpoint parts are written (--checkpoint_write). Default: SST + ingestion.
  checkpoint::WriteMethod checkpoint_write = checkpoint::WriteMethod::kSstIngest;
  // --sync=allreduce|hybrid: the workers own the dense parameters; checkpoints of this
  // server hold its sparse tables only (CheckpointParticipant). Default: false.
  bool dense_on_workers = false;
  // Threads a large sparse pull or push runs on (--server_threads): 2 adds one helper
  // thread that takes ranges of the batch's rows beside the reactor
  // (ShardStore::SetSplitWork; docs/benchmarks-sparse-threads.md). Default: 1 (the
  // reactor alone).
  int threads = 1;
  // Eviction, expiry and admission of the sparse tables (launch/table_flags.h). A name
  // in memory_limits that is no sparse table of the job ends the server (exit 2).
  TableLimits table_limits;
};

class ParamServer {
 public:
  static Result<std::unique_ptr<ParamServer>> Start(ServerOptions options,
                                                    std::shared_ptr<wire::Context> ctx);
  ~ParamServer();
  ParamServer(const ParamServer&) = delete;
  ParamServer& operator=(const ParamServer&) = delete;

  const std::string& data_endpoint() const { return data_endpoint_; }

  // Blocks until the server is told to stop (or `timeout`). The outcome's exit code is
  // the coordinator's Shutdown code, kExitPeerFailure when the coordinator vanished.
  JobOutcome Wait(Duration timeout = std::chrono::hours(24 * 365));

  // A preemption signal reached this process: asks the coordinator to checkpoint and end
  // the job (urgent: end it now). Any thread.
  void RequestPreempt(int signal, bool urgent);

  // For tests, any thread: the data socket's outbox bytes and the messages its
  // bounds dropped, read on the loop ({0, 0} once the loop stopped).
  std::pair<uint64_t, uint64_t> TEST_DataOutbox();

 private:
  explicit ParamServer(ServerOptions options, std::unique_ptr<wire::Reactor> reactor);

  // Loop thread only.
  void OnControl(wire::Socket& sock, wire::InMessage&& msg);
  void OnData(wire::Socket& sock, wire::InMessage&& msg);
  // A pull (or pushPull whose push is applied) waiting for its step, kept decoded:
  // `decoded` points into msg's payload Buffers, whose bytes stay put when the message
  // is moved, so it stays valid for as long as msg does.
  struct ParkedRequest {
    wire::InMessage msg;
    DataRequest decoded;
  };
  // Handles one decoded data request; returns true when it was answered (or refused),
  // false when it must be parked.
  bool Serve(wire::Socket& sock, const wire::InMessage& msg, DataRequest& decoded, bool already_pushed);
  // The pull half's reply: `n` values in `out`, which go streamed (written after the
  // send, published through the slot's progress word) when `streamable`. Errors: a bad
  // payload (the send's own failure is ignored: the peer is gone).
  Status SendPullReply(wire::Socket& sock, const wire::InMessage& msg, const DataRequest& decoded, Buffer out,
                       uint64_t n, int64_t applied, bool streamable);
  void RetryParked();
  void Heartbeat();
  // Loop thread: every sparse table's TablePolicy from options_.table_limits (before a restore).
  Status ApplyTableLimits();
  // Loop thread (the heartbeat's metrics): the tables' resident rows and bytes and policy counts.
  void ReportTableMetrics(std::vector<metrics::Sample>& out) const;
  void Finish(Status status, int exit_code);

  const ServerOptions options_;
  std::unique_ptr<wire::Reactor> reactor_;
  std::string data_endpoint_;
  wire::Socket* control_ = nullptr;  // DEALER to the coordinator; loop thread only
  wire::Socket* data_ = nullptr;     // ROUTER for workers; loop thread only

  // Loop thread only.
  std::optional<ParamServerCore> core_;
  std::unique_ptr<CheckpointParticipant> checkpoints_;
  int64_t resume_step_ = -1;       // from the Welcome
  std::string resume_path_;
  std::deque<ParkedRequest> parked_;  // pulls waiting for their step (pushes already applied)
  Clock::time_point coordinator_seen_;
  Duration heartbeat_timeout_ = std::chrono::seconds(10);
  bool welcomed_ = false;
  bool finished_ = false;
  int64_t max_step_seen_ = -1;
  std::vector<float> scratch_;
  wire::MetricsReporter reporter_;  // heartbeats carry metrics (docs/metrics.md)

  std::mutex mu_;
  std::condition_variable done_cv_;
  bool done_ GUARDED_BY(mu_) = false;
  JobOutcome outcome_ GUARDED_BY(mu_);
};

}  // namespace tessera::paramserver
