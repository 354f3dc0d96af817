// Client: what a worker uses to talk to the job — the ps-lite KVWorker of Tessera.
//
//   auto c = Client::Connect(opts, ctx);            // registers with the coordinator
//   c->DeclareParams(model.Params(), timeout);      // waits for the shard map
//   Handle h = c->PushPull(id, grad, weights, step);  // async, split across servers
//   h.Wait(timeout);
//
// Requests are split by the shard map and the pieces go to their servers in parallel;
// the Handle completes when every piece has been answered. Dense pushes send the
// caller's memory without copying, so a pushed or pulled tensor must stay alive and
// unchanged (pushed) / untouched (pulled) until its Handle is done (IsDone(), or Wait()
// returning anything but its own "still in flight" TimedOut). A dense push's Handle
// completes only once ZeroMQ has released every frame over the caller's memory (its free
// callback ran), also when the push failed or timed out: a failed Handle never leaves
// ZeroMQ reading memory the caller got back. On one host a dense pull's or push+pull's
// values may arrive streamed (wire/shm_stream.h): then the thread that waits on the
// Handle (Wait, IsDone) copies them into the tensor as the server writes them, rather
// than the client's loop thread. Sparse and top-k pushes send copies. Sparse pushes merge duplicate
// keys first, so only distinct keys travel; sparse pulls fetch each distinct key once.
// In every sync mode each sparse push reaches every server (an empty key list where a
// server owns none of the batch's keys), because a server counts one push per worker
// per step (docs/consistency.md).
//
// Failures: each request has a deadline (request_timeout); a Shutdown from the
// coordinator with a non-zero code, or a coordinator silent past the heartbeat timeout,
// fails every pending request and makes health() non-OK, so the training loop stops.
// A dense push past its deadline does the same (TimedOut): ZeroMQ may still be sending
// it to a stalled server, and only dropping the server connections (zmq_disconnect,
// linger 0) makes it release the frames. A push that failed this way MAY HAVE BEEN
// APPLIED: the frames may have reached the server before the connection dropped, and a
// server applies a push it received completely. Its error says so ("... may have been
// applied"); a pull or a sparse push that times out fails only its own Handle.
//
// Threading: one reactor thread owns every socket and the table of pending requests,
// under the reactor's loop lock (wire/reactor.h): under caller_leads a data request's
// caller takes that lock to send it (to a same-host server too); without it, a caller to
// a server reached over TCP alone takes it only when it is free at once (TryRunInline)
// and others post; under caller_leads a thread
// waiting on its Handle takes it to read replies, completing whichever requests they
// answer. Every public method may be
// called from any thread; calls are cheap (they build the messages and send or Post them).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/keys.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"
#include "common/thread_annotations.h"
#include "common/cluster/shard_map.h"
#include "wire/reactor.h"
#include "worker/handle.h"
#include "worker/key_groups.h"

namespace tessera::worker {

struct ClientMetrics;  // worker/client_metrics.h

struct ClientOptions {
  std::string coordinator;      // "tcp://127.0.0.1:5555"
  uint64_t job_id = 0;
  int rank = 2;                 // this worker's rank: num_servers + 1 + worker index
  int num_servers = 1;
  int num_workers = 1;
  // Deadline of one data-plane request. bsp pulls wait for the slowest worker, so this
  // bounds how long a straggler may take. Default: 300 s.
  Duration request_timeout = std::chrono::seconds(300);
  // Welcome and shard map must arrive within this. Default: 120 s.
  Duration register_timeout = std::chrono::seconds(120);
  // Messages queued per server connection before Send pushes back. Default: 1000.
  int max_inflight = 1000;
  // A dense request to a server reached over TCP (no same-host shared-memory channel) is
  // cut at chunk boundaries into requests of about this many bytes (at least one chunk
  // each), all in flight at once: the server verifies and applies one while the next is
  // on the wire, and its reply travels while the next is applied. 0: one request per
  // server. Default: 1 MiB (--tcp_request_bytes; smaller requests cost more than they
  // overlap on 2 cores, docs/benchmarks.md).
  uint64_t tcp_request_bytes = 1 << 20;
  // Leader/follower (issue 17): a thread that sends a data request sends it itself (to
  // a same-host server, copying the gradient into shared memory itself), and a thread that
  // waits on its Handle reads the replies itself while it waits (a same-host server's
  // local link included), instead of handing both
  // to the reactor thread (two wake-ups per request); the reactor thread then leaves
  // those sockets to the leader and sleeps through the replies (wire/reactor.h, "A loop
  // that sleeps while a leader reads"). Default: on (--caller_leads): it pays over
  // loopback TCP and with several caller threads, and costs nothing measurable between
  // namespace hosts (docs/benchmarks-transport-lead.md). Off, a caller still sends to such
  // a server itself when the loop lock is free at once.
  bool caller_leads = true;
};

// Counters for metrics and tests (monotonic, read any time).
struct ClientStats {
  std::atomic<uint64_t> bytes_pushed{0};
  std::atomic<uint64_t> bytes_pulled{0};
  std::atomic<uint64_t> keys_pushed{0};   // sparse keys sent in pushes (after merging)
  std::atomic<uint64_t> keys_pulled{0};   // sparse keys sent in pulls (after merging)
  std::atomic<uint64_t> requests{0};
  // Sparse batches grouped (GroupKeys); a push of the keys just pulled reuses the pull's.
  std::atomic<uint64_t> key_groupings{0};
};

// Where a resumed job starts (Welcome): step -1 means a fresh start.
struct ResumePoint {
  int64_t step = -1;
  int64_t epoch = 0;     // this worker's data cursor at `step`
  int64_t position = 0;
  std::string checkpoint_path;  // the step directory resumed from
};

// A database a worker wrote into a checkpoint (Client::ReportCheckpoint).
struct WrittenPart {
  uint64_t digest = 0;
  uint64_t records = 0;
};

class Client {
 public:
  // Registers and waits for the welcome. When the job is stopped while this worker is
  // still joining (a Shutdown arrives), the error is returned and, when
  // `requested_exit_code` is given, the exit code the coordinator asked for is stored there.
  static Result<std::unique_ptr<Client>> Connect(ClientOptions options,
                                                 std::shared_ptr<wire::Context> ctx,
                                                 int* requested_exit_code = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int worker_index() const { return options_.rank - 1 - options_.num_servers; }

  // Sends the model's parameters (every worker declares the same list) and blocks until
  // the coordinator publishes the shard map, then connects to every server.
  Status DeclareParams(const std::vector<ParamSpec>& params);
  // REQUIRES: DeclareParams succeeded.
  const ShardMap& shard_map() const { return *map_; }
  // Parameter id of `name`, NotFound when the model has no such parameter.
  Result<uint32_t> ParamId(const std::string& name) const;

  // Dense: `grad` / `out` are f32 host tensors with the parameter's element count. By
  // reference: a TensorView copy copies its shape (an allocation per request).
  Handle Push(uint32_t param_id, const TensorView& grad, int64_t step);
  Handle Pull(uint32_t param_id, const TensorView& out, int64_t step);
  Handle PushPull(uint32_t param_id, const TensorView& grad, const TensorView& out, int64_t step);

  // Dense, --compress=topk:R on the parameter-server path: only the entries `indices`
  // (ascending, < the parameter's element count) with `values` travel, as i32 offsets
  // plus f32 values (docs/wire_format.md); the rest of the gradient is zero. Every server
  // holding a piece of the parameter gets a push, empty when no entry falls in it (bsp
  // counts one push per worker and step). Defined in client_topk.cc.
  Handle PushTopK(uint32_t param_id, std::span<const uint32_t> indices, std::span<const float> values, int64_t step);

  // Sparse: rows is f32 [keys.size(), row_width] (duplicate keys are summed before
  // sending); out is f32 [keys.size(), row_width] (row i receives key keys[i]).
  Handle PushSparse(uint32_t param_id, std::span<const Key> keys, TensorView rows, int64_t step);
  Handle PullSparse(uint32_t param_id, std::span<const Key> keys, TensorView out, int64_t step);
  // Adds every server's store digest (paramserver::ShardStore::Digest, or only its
  // sparse rows' part when `sparse_only`) into *sum, each read when that server serves a
  // pull of sparse table `table` at `step` (so under bsp after step - 1 is applied
  // everywhere). The digests are wrapping sums of per-unit hashes, so *sum does not
  // depend on the server count. *sum must stay alive until the handle completes.
  Handle PullStoreDigest(uint32_t table, int64_t step, bool sparse_only, uint64_t* sum);

  // Blocks until every worker reached this barrier (or timeout / failure). `final_step`
  // >= 0 marks the end-of-training barrier at that step boundary: the coordinator may
  // send the prepare of the job's final checkpoint before releasing it.
  Status Barrier(Duration timeout, int64_t final_step = -1);
  // A small value the workers share through the coordinator (at most 4096 bytes, keys of
  // 1..128 bytes; docs/protocol.md "Rendezvous"). Values are write-once: putting other
  // bytes under a key that holds a value fails with FailedPrecondition.
  Status RendezvousPut(const std::string& key, std::string_view value, Duration timeout);
  // Polls until some worker has put `key`; TimedOut naming the key after `timeout`.
  Result<std::string> RendezvousGet(const std::string& key, Duration timeout);

  // Tells the coordinator this worker's progress (step clock, status, metrics).
  void ReportStep(int64_t step, double loss, uint64_t samples);
  // Tells the coordinator this worker is done (exit_code 0) or failed, then closes the
  // connections after the message is out.
  Status Finish(int exit_code, const std::string& reason);

  // ---- Checkpoints and preemption (docs/checkpoints.md) ----
  // Valid once Connect returned.
  ResumePoint resume() const;
  // The step of a checkpoint the coordinator asked for and this worker has not answered
  // yet, or -1. The trainer looks at each step boundary.
  int64_t pending_checkpoint() const { return pending_checkpoint_.load(); }
  // The step directory the prepare of `step` named ("" unless that is the newest prepare).
  std::string pending_checkpoint_dir(int64_t step) const;
  // Answers the prepare of `step` with this worker's state at that boundary (or not ok).
  // `part`: the database this worker wrote into the checkpoint (worker 0 under
  // --sync=allreduce|hybrid; records 0: none).
  void ReportCheckpoint(int64_t step, bool ok, const std::string& message, int64_t next_step, int64_t epoch,
                        int64_t position, WrittenPart part = {});
  // A preemption signal reached this process: tells the coordinator (urgent: stop now).
  void RequestPreempt(int signal, bool urgent);

  // OK while the job is healthy; the reason otherwise (Shutdown, coordinator gone).
  Status health() const;
  // Exit code the coordinator asked for (Shutdown), or 0.
  int requested_exit_code() const { return requested_exit_code_.load(); }
  const ClientStats& stats() const { return stats_; }
  // Bytes written by every checkpoint committed while this worker ran (metrics).
  uint64_t checkpoint_bytes() const { return committed_bytes_.load(); }
  int64_t checkpoint_step() const { return committed_step_.load(); }

 private:
  // What a rendezvous reply said.
  struct RendezvousReply {
    bool found = false;
    std::string value;
  };

  // One in-flight request to one server (or to the coordinator).
  struct Part {
    Part() = default;
    // A default-constructed Handle allocates state of its own: a part made for `h` skips it.
    explicit Part(Handle h) : handle(std::move(h)) {}
    Handle handle;
    uint32_t param_id = 0;
    float* out = nullptr;            // pull destination (dense: at offset 0 of the piece)
    uint64_t out_elements = 0;       // expected reply elements
    uint64_t row_width = 0;          // sparse: row width, with `groups` below
    // Sparse pull: reply row r is key group group_of[r] of `groups` (shared by the
    // request's parts), copied to each of that group's output rows. group_of views
    // groups->split (immutable once built; `groups` keeps it alive): copying it cost an
    // allocation and 32 KB per 4096-key pull.
    std::shared_ptr<const KeyGroups> groups;
    std::span<const uint64_t> group_of;
    uint64_t* digest_sum = nullptr;  // PullStoreDigest: the reply's storeDigest is added here
    Clock::time_point deadline;
    std::string what;                // "pull of 'fc1.weight' from server 1"; a dense piece: see What()
    // A dense piece's description, formatted by What() only when a message needs it (an
    // error, a timeout): formatting it for every request cost several allocations each.
    const std::string* dense_name = nullptr;  // the parameter's name in map_ (constant)
    wire::Op dense_op{};
    uint64_t dense_begin = 0, dense_end = 0;
    std::string What() const;
    std::shared_ptr<RendezvousReply> rendezvous;  // a rendezvous request: the reply goes here
    int server = -1;                 // server index, for the round-trip metric
    Clock::time_point sent{};
    bool zero_copy_push = false;     // the message's frames are the caller's memory
  };

  Client(ClientOptions options, std::unique_ptr<wire::Reactor> reactor);

  // Loop thread only.
  void OnControl(wire::Socket& sock, wire::InMessage&& msg);
  void OnData(wire::Socket& sock, wire::InMessage&& msg);
  void CompleteFromReply(uint64_t request_id, wire::InMessage&& msg);
  void Tick();
  void FailAll(const Status& st);
  // The status a failed part completes with: for a zero-copy push, that it may have been
  // applied (see "Failures" above).
  static Status PartFailure(const Part& p, const Status& st);
  // `t` is an f32 host tensor of `elements` elements (InvalidArgument naming `what` if not).
  static Status CheckHostF32(const TensorView& t, uint64_t elements, const char* what);
  // The spec of `param_id`: NotFound if the shard map has none, InvalidArgument if it is
  // not of `kind` (every request's first check).
  Result<const ParamSpec*> ParamOfKind(uint32_t param_id, ParamKind kind) const;
  void ConnectServers();

  // Any thread: builds and queues a request to a server; the Part completes its handle.
  void SendToServer(uint32_t server, wire::OutMessage&& msg, Part part);
  // Loop lock held: records the part and sends.
  void SendNow(uint32_t server, wire::OutMessage&& msg, Part&& part);
  // Reactor thread, before a request to the coordinator: once the job stopped (SHUTDOWN)
  // or the client failed, completes `h` with that status and returns true. Without it a
  // barrier after the coordinator left waited its whole timeout for an answer that could
  // not come (a Python worker between steps when a preemption stopped the job).
  bool CompleteIfStopped(const Handle& h, const std::string& what);
  // By reference: each copy of a TensorView copies its shape, an allocation (issue 17).
  Handle DenseRequest(wire::Op op, uint32_t param_id, const TensorView& grad, const TensorView& out, int64_t step);
  // Any thread: `pieces` (SplitDense's, of a whole tensor) with those to servers reached
  // over TCP cut into requests of options_.tcp_request_bytes, at chunk boundaries, in
  // *cut; `pieces` itself when none is cut (a small tensor: no copy).
  std::span<const DensePiece> PipelineOverTcp(const DenseLayout& layout, std::span<const DensePiece> pieces,
                                              std::vector<DensePiece>* cut) const;
  wire::OutMessage NewData(wire::Op op, uint32_t param_id, ParamKind kind, int64_t step);
  // NewData for one server's piece [begin, end) of a dense parameter.
  wire::OutMessage NewDensePiece(wire::Op op, uint32_t param_id, const DensePiece& piece, int64_t step);
  Status WaitFor(const char* what, Duration timeout, bool ShardMapOrWelcome);
  // Any thread: one rendezvous request to the coordinator and its reply.
  Result<RendezvousReply> Rendezvous(const std::string& key, std::string_view value, bool put, Duration timeout);

  const ClientOptions options_;
  // Shared with the Handles' leader (weakly), which may outlive the client.
  std::shared_ptr<wire::Reactor> reactor_;
  std::shared_ptr<const Handle::Leader> leader_;  // null unless caller_leads; constant
  std::shared_ptr<wire::Context> ctx_;
  wire::Socket* control_ = nullptr;            // loop thread only
  std::vector<wire::Socket*> servers_;         // loop thread only (index = server)
  std::vector<std::string> server_endpoints_;  // loop thread only (index = server)
  // Per server: its shared-memory channel was on at the last dense reply (the loop thread
  // writes, DenseRequest reads: such requests stay whole, the channel streams them).
  // Sized once, before DeclareParams returns.
  std::vector<std::atomic<bool>> server_on_shm_;
  // Per server: its socket never uses shared memory or a local link (--shm=off), so its
  // callers lead (caller_leads). Written once, before DeclareParams returns.
  std::vector<char> server_tcp_only_;
  std::atomic<uint64_t> next_request_id_{0};
  std::atomic<uint64_t> barriers_{0};
  std::unique_ptr<ShardMap> map_;              // set once, before DeclareParams returns
  // Per parameter id: SplitDense of the whole tensor (empty for a sparse one), set with
  // map_: a pure function of the map, computed (and allocated) once, not per request.
  std::vector<std::vector<DensePiece>> whole_split_;
  ClientStats stats_;
  std::unique_ptr<ClientMetrics> metrics_;     // constant pointer after construction
  std::atomic<int> requested_exit_code_{0};
  std::atomic<int64_t> pending_checkpoint_{-1};
  std::atomic<uint64_t> committed_bytes_{0};  // bytes of the checkpoints committed so far
  std::atomic<int64_t> committed_step_{-1};    // newest committed checkpoint

  // Loop lock only (the loop thread, an inline sender, a leader).
  std::unordered_map<uint64_t, Part> pending_;
  // Loop lock only: nodes of answered parts (moved from), reused by the next request's
  // part: a new map node was an allocation per request (issue 17). At most kSpareParts.
  static constexpr size_t kSpareParts = 64;
  std::vector<std::unordered_map<uint64_t, Part>::node_type> spare_parts_;
  // Loop lock held: records `part` under `rid`, in a spare node when there is one.
  void AddPending(uint64_t rid, Part&& part);
  // Loop lock held: removes the part at `it` and returns it, keeping its node.
  Part TakePending(std::unordered_map<uint64_t, Part>::iterator it);
  Clock::time_point coordinator_seen_;
  Duration heartbeat_timeout_ = std::chrono::seconds(10);
  bool heartbeating_ = false;
  bool coordinator_stopped_ = false;  // a Shutdown arrived, or the coordinator went silent (Tick)
  int64_t last_step_ = -1;

  // The key grouping of `keys` for table `param_id` (GroupKeys). Each table's last pull's
  // is kept (a copy of its keys and the grouping) and handed to a push of the same keys
  // to that table, which is what a training step pushes after its pulls (one per table):
  // GroupKeys then runs once per table and step, not twice. The grouping is a pure
  // function of the keys, so reusing it changes no bit.
  Result<std::shared_ptr<const KeyGroups>> GroupsOf(uint32_t param_id, std::span<const Key> keys, bool keep);
  struct KeptGroups {
    std::vector<Key> keys;
    std::shared_ptr<const KeyGroups> groups;
  };
  std::mutex groups_mu_;
  std::vector<KeptGroups> kept_groups_ GUARDED_BY(groups_mu_);  // index = param id

  // State below is protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool welcomed_ GUARDED_BY(mu_) = false;
  bool have_map_ GUARDED_BY(mu_) = false;
  ResumePoint resume_ GUARDED_BY(mu_);
  std::string shared_marker_ GUARDED_BY(mu_);  // Welcome.sharedMarker: checked by Connect
  std::pair<int64_t, std::string> prepared_dir_ GUARDED_BY(mu_){-1, ""};  // newest prepare
  Status health_ GUARDED_BY(mu_);
  std::unique_ptr<ShardMap> received_map_ GUARDED_BY(mu_);
};

}  // namespace tessera::worker
