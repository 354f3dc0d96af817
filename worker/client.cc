#include "worker/client.h"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/exit_codes.h"
#include "common/hostname.h"
#include "common/shared_marker.h"
#include "wire/shard_map_wire.h"
#include "kernels/ops.h"
#include "worker/client_metrics.h"

namespace tessera::worker {

using wire::InMessage;
using wire::Op;
using wire::OutMessage;
using wire::Socket;

Status Client::CheckHostF32(const TensorView& t, uint64_t elements, const char* what) {
  if (t.dtype != DType::kF32 || t.device != Device::kCPU) {
    return Status::InvalidArgument(std::string(what) + " must be an f32 host tensor");
  }
  if (static_cast<uint64_t>(t.numel()) != elements) {
    return Status::InvalidArgument(std::string(what) + " has " + std::to_string(t.numel()) +
                                   " elements, the parameter has " + std::to_string(elements));
  }
  return Status::OK();
}

Result<const ParamSpec*> Client::ParamOfKind(uint32_t param_id, ParamKind kind) const {
  const ParamSpec* spec = map_ ? map_->param(param_id) : nullptr;
  if (spec == nullptr) return Status::NotFound("unknown parameter id " + std::to_string(param_id));
  if (spec->kind != kind) {
    return Status::InvalidArgument("'" + spec->name + "' is " + (spec->kind == ParamKind::kDense ? "dense" : "sparse"));
  }
  return spec;
}

Result<std::unique_ptr<Client>> Client::Connect(ClientOptions options, std::shared_ptr<wire::Context> ctx,
                                                int* requested_exit_code) {
  int index = options.rank - 1 - options.num_servers;
  if (index < 0 || index >= options.num_workers) {
    return Status::InvalidArgument("worker rank " + std::to_string(options.rank) + " is not a worker rank of a job with " +
                                   std::to_string(options.num_servers) + " servers and " +
                                   std::to_string(options.num_workers) + " workers");
  }
  TESSERA_ASSIGN_OR_RETURN(auto reactor, wire::Reactor::Create());
  wire::SocketOptions so;
  so.decode.expected_job_id = options.job_id;
  so.stamp_sender = true;
  so.job_id = options.job_id;
  so.role = wire::Role::WORKER;
  so.rank = options.rank;
  so.routing_id = "rank-" + std::to_string(options.rank);
  TESSERA_ASSIGN_OR_RETURN(auto control, Socket::Create(ctx, wire::SocketType::kDealer, so));
  TESSERA_RETURN_IF_ERROR(control->Connect(options.coordinator));

  std::unique_ptr<Client> c(new Client(std::move(options), std::move(reactor)));
  c->ctx_ = ctx;
  Client* self = c.get();
  c->control_ = c->reactor_->AddSocket(std::move(control), [self](Socket& s, InMessage&& m) { self->OnControl(s, std::move(m)); });
  c->coordinator_seen_ = Clock::now();
  c->reactor_->RunEvery(std::chrono::milliseconds(100), [self] { self->Tick(); });
  TESSERA_RETURN_IF_ERROR(c->reactor_->Start());

  OutMessage reg(Op::REGISTER);
  reg.SetRequestId(++c->next_request_id_);
  auto r = reg.header().getBody().initRegister();
  r.setRole(wire::Role::WORKER);
  r.setRank(c->options_.rank);
  r.setHost(Hostname());
  r.setPid(static_cast<uint32_t>(getpid()));
  r.setNumServers(static_cast<uint32_t>(c->options_.num_servers));
  r.setNumWorkers(static_cast<uint32_t>(c->options_.num_workers));
  auto holder = std::make_shared<OutMessage>(std::move(reg));
  c->reactor_->Post([self, holder] {
    Status st = self->control_->Send(std::move(*holder));
    if (!st.ok()) self->FailAll(st.WithContext("registering"));
  });
  Status joined = c->WaitFor("welcome", c->options_.register_timeout, false);
  if (!joined.ok()) {
    if (requested_exit_code != nullptr) *requested_exit_code = c->requested_exit_code_.load();
    return joined;
  }
  std::string marker;
  {
    std::lock_guard<std::mutex> l(c->mu_);
    marker = c->shared_marker_;
  }
  if (Status st = CheckSharedMarker(marker); !st.ok()) {
    // Tell the coordinator, so the job ends at once and its message names this node.
    c->Finish(kExitConfig, st.message()).IgnoreError();
    if (requested_exit_code != nullptr) *requested_exit_code = kExitConfig;
    return st;
  }
  return c;
}

Client::Client(ClientOptions options, std::unique_ptr<wire::Reactor> reactor)
    : options_(std::move(options)),
      reactor_(std::move(reactor)),
      metrics_(std::make_unique<ClientMetrics>(options_.num_servers)) {
  if (options_.caller_leads) {
    // Weak: a Handle may outlive the client; leading then finds no reactor and waits.
    std::weak_ptr<wire::Reactor> weak = reactor_;
    leader_ = std::make_shared<const Handle::Leader>([weak](Clock::time_point until, int wake_fd) {
      std::shared_ptr<wire::Reactor> r = weak.lock();
      return r != nullptr && r->Lead(wake_fd, until);
    });
    // While a caller leads, the loop leaves the server sockets to it and sleeps: a reply
    // woke both, and the loop's turn then held the lock the caller's next send needed.
    reactor_->SetRepliesAwaited([this] { return !pending_.empty(); });
  }
  metrics_->reporter = wire::MetricsReporter([this](std::vector<metrics::Sample>& out) {
    out.push_back({"bytes_pushed_total", metrics::Kind::kCounter, static_cast<double>(stats_.bytes_pushed.load()), 0, -1});
    out.push_back({"bytes_pulled_total", metrics::Kind::kCounter, static_cast<double>(stats_.bytes_pulled.load()), 0, -1});
    out.push_back({"requests_inflight", metrics::Kind::kGauge, static_cast<double>(pending_.size()), 0, -1});
  });
}

Client::~Client() { reactor_->Stop(); }

Status Client::WaitFor(const char* what, Duration timeout, bool map) {
  std::unique_lock<std::mutex> l(mu_);
  bool ok = cv_.wait_for(l, timeout, [&]() REQUIRES(mu_) {
    return !health_.ok() || (map ? have_map_ : welcomed_);
  });
  if (!health_.ok()) return health_;
  if (!ok) {
    return Status::TimedOut(std::string("no ") + (map ? "shard map" : "welcome") + " from the coordinator at " +
                            options_.coordinator + " within " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) + " s" +
                            (map ? "" : " (can this host reach it? under --auth=mac or curve, is this host's "
                                        "job key file the one rank 0 uses, on shared storage?)"));
  }
  return Status::OK();
}

Status Client::DeclareParams(const std::vector<ParamSpec>& params) {
  OutMessage m(Op::DECLARE_PARAMS);
  uint64_t rid = ++next_request_id_;
  m.SetRequestId(rid);
  ParamSpecsToWire(params, m.header().getBody().initDeclareParams());
  Handle h = Handle::Pending(1);
  auto holder = std::make_shared<OutMessage>(std::move(m));
  reactor_->Post([this, holder, h, rid] {
    if (CompleteIfStopped(h, "declaring parameters")) return;
    Part p;
    p.handle = h;
    p.deadline = Clock::now() + options_.register_timeout;
    p.what = "declaring parameters";
    AddPending(rid, std::move(p));
    Status st = control_->Send(std::move(*holder));
    if (!st.ok()) {
      pending_.erase(rid);
      h.CompletePart(st);
    }
  });
  TESSERA_RETURN_IF_ERROR(h.Wait(options_.register_timeout + std::chrono::seconds(1)));
  TESSERA_RETURN_IF_ERROR(WaitFor("shard map", options_.register_timeout, true));
  std::lock_guard<std::mutex> l(mu_);
  map_ = std::move(received_map_);
  whole_split_.resize(map_->num_params());
  for (uint32_t i = 0; i < map_->num_params(); ++i) {
    const ParamSpec* spec = map_->param(i);
    if (spec->kind != ParamKind::kDense || spec->numel() <= 0) continue;
    auto split = map_->SplitDense(i, 0, static_cast<uint64_t>(spec->numel()));
    if (split.ok()) whole_split_[i] = std::move(split).value();  // else each request reports it
  }
  return Status::OK();
}

Result<uint32_t> Client::ParamId(const std::string& name) const {
  for (uint32_t i = 0; i < map_->num_params(); ++i) {
    if (map_->param(i)->name == name) return i;
  }
  return Status::NotFound("no parameter named '" + name + "'");
}

void Client::OnControl(Socket& sock, InMessage&& msg) {
  coordinator_seen_ = Clock::now();
  auto body = msg.header().getBody();
  switch (msg.op()) {
    case Op::WELCOME: {
      auto w = body.getWelcome();
      heartbeat_timeout_ = std::chrono::milliseconds(w.getHeartbeatTimeoutMs());
      if (!heartbeating_) {
        heartbeating_ = true;
        auto interval = std::chrono::milliseconds(std::max<uint32_t>(50, w.getHeartbeatIntervalMs()));
        reactor_->RunEvery(interval, [this] {
          OutMessage hb(Op::HEARTBEAT);
          auto b = hb.header().getBody().initHeartbeat();
          b.setStep(last_step_);
          metrics_->reporter.MaybeAttach(b, Clock::now());
          // One that cannot go at once is a missed heartbeat, not one queued to arrive stale.
          control_->SendIfRoom(std::move(hb)).IgnoreError();
        });
      }
      std::lock_guard<std::mutex> l(mu_);
      resume_ = {w.getResumeStep(), w.getResumeEpoch(), w.getResumePosition(), w.getCheckpointPath().cStr()};
      shared_marker_ = w.getSharedMarker().cStr();
      welcomed_ = true;
      cv_.notify_all();
      return;
    }
    case Op::CKPT_PREPARE: {
      {
        std::lock_guard<std::mutex> l(mu_);
        prepared_dir_ = {body.getCkptPrepare().getStep(), body.getCkptPrepare().getDirectory().cStr()};
      }
      pending_checkpoint_ = body.getCkptPrepare().getStep();
      return;
    }
    case Op::CKPT_COMMIT: {
      auto c = body.getCkptCommit();
      int64_t expected = c.getStep();
      pending_checkpoint_.compare_exchange_strong(expected, -1);  // an abandoned one needs no answer
      if (c.getCommitted()) {
        committed_step_ = c.getStep();
        committed_bytes_ += c.getBytesWritten();
      }
      return;
    }
    case Op::SHARD_MAP: {
      auto map = ShardMapFromWire(body.getShardMap());
      if (!map.ok()) return FailAll(map.status().WithContext("the coordinator's shard map"));
      std::lock_guard<std::mutex> l(mu_);
      received_map_ = std::make_unique<ShardMap>(std::move(map).value());
      // Sockets to the servers are made here, on the loop thread that will own them.
      const auto& servers = received_map_->data().servers;
      wire::SocketOptions so = control_->options();
      so.send_hwm = so.recv_hwm = options_.max_inflight;
      // Back-pressure without a wait on the loop: requests past a full queue wait in the
      // outbox, each bounded by its own deadline (Tick), as they once waited in Send.
      so.outbox_hwm = 0;
      // Nothing on a data socket needs delivery after the worker is done (every handle was
      // waited for), and a dead server must not hold up exit for the linger time.
      so.linger_ms = 0;
      so.shm.accept_streamed = true;  // CompleteFromReply waits on streamed replies
      for (const auto& s : servers) {
        auto sock_or = Socket::Create(ctx_, wire::SocketType::kDealer, so);
        Status st = sock_or.status();
        if (st.ok()) st = (*sock_or)->Connect(s.endpoint);
        if (!st.ok()) {
          health_ = st.WithContext("connecting to server at " + s.endpoint);
          cv_.notify_all();
          return;
        }
        server_endpoints_.push_back(s.endpoint);
        const bool tcp_only = !(*sock_or)->shm_enabled();
        server_tcp_only_.push_back(tcp_only);
        // A same-host server's too: a leader reads its local link as well (wire/reactor.h).
        servers_.push_back(reactor_->AddSocket(std::move(sock_or).value(),
                                               [this](Socket& k, InMessage&& m) { OnData(k, std::move(m)); },
                                               nullptr, /*leadable=*/options_.caller_leads));
      }
      server_on_shm_ = std::vector<std::atomic<bool>>(servers_.size());
      have_map_ = true;
      cv_.notify_all();
      return;
    }
    case Op::HEARTBEAT: return;
    case Op::SHUTDOWN: {
      auto sd = body.getShutdown();
      requested_exit_code_ = sd.getExitCode();
      coordinator_stopped_ = true;
      Status st = sd.getExitCode() == 0 ? Status::Aborted("the job finished: " + std::string(sd.getReason().cStr()))
                                         : Status::Aborted(std::string("the job is stopping: ") + sd.getReason().cStr());
      return FailAll(st);
    }
    case Op::RESPONSE:
    case Op::BARRIER:
    case Op::RENDEZVOUS:
      return CompleteFromReply(msg.request_id(), std::move(msg));
    case Op::ERROR: {
      if (pending_.count(msg.request_id())) return CompleteFromReply(msg.request_id(), std::move(msg));
      Status st = wire::StatusFromError(msg);
      requested_exit_code_ = ExitCodeForStatusCode(static_cast<int>(st.code()));
      return FailAll(st.WithContext("the coordinator refused us"));
    }
    default:
      LOG(WARNING) << "unexpected " << wire::OpName(msg.op()) << " from the coordinator";
  }
}

void Client::OnData(Socket&, InMessage&& msg) { CompleteFromReply(msg.request_id(), std::move(msg)); }

void Client::Tick() {
  auto now = Clock::now();
  if (heartbeating_ && now - coordinator_seen_ > heartbeat_timeout_) {
    Status st = Status::Unavailable("the coordinator at " + options_.coordinator + " is unreachable");
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!health_.ok()) return;
    }
    requested_exit_code_ = kExitPeerFailure;
    // Nothing queued for it will be read, nor sent later (Finish): closing must not wait
    // its linger for it.
    coordinator_stopped_ = true;
    control_->AbandonQueued();
    return FailAll(st);
  }
  std::string push_timed_out;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (now > it->second.deadline) {
      const Part& p = it->second;
      if (p.zero_copy_push && push_timed_out.empty()) push_timed_out = p.What();
      p.handle.CompletePart(PartFailure(p, Status::TimedOut(p.What() + " got no reply in time")));
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  // ZeroMQ may still hold that push's frames (a stalled server): only dropping the
  // connections releases them, and with them the push handles (client.h "Failures").
  if (!push_timed_out.empty()) {
    requested_exit_code_ = kExitPeerFailure;
    FailAll(Status::TimedOut(push_timed_out + " got no reply in time; the connections to the servers are dropped"));
  }
}

std::string Client::Part::What() const {
  if (dense_name == nullptr) return what;
  return wire::OpName(dense_op) + " of '" + *dense_name + "' [" + std::to_string(dense_begin) + ", " +
         std::to_string(dense_end) + ") on server " + std::to_string(server);
}

Status Client::PartFailure(const Part& p, const Status& st) {
  if (!p.zero_copy_push) return st;
  return Status(st.code(), st.message() + " (the push may have been applied by the server)");
}

void Client::FailAll(const Status& st) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (health_.ok()) health_ = st;
    cv_.notify_all();
  }
  for (auto& [rid, p] : pending_) p.handle.CompletePart(PartFailure(p, st.WithContext(p.What())));
  pending_.clear();
  // Nothing more goes to the servers (SendToServer checks health_). Dropping the
  // connections (linger 0) makes ZeroMQ discard what it still queues and release the
  // frames of zero-copy pushes, which completes their handles (DenseRequest).
  for (size_t s = 0; s < servers_.size(); ++s) servers_[s]->Disconnect(server_endpoints_[s]).IgnoreError();
}

Status Client::health() const {
  std::lock_guard<std::mutex> l(mu_);
  return health_;
}

OutMessage Client::NewData(Op op, uint32_t param_id, ParamKind kind, int64_t step) {
  OutMessage m(op);
  m.SetRequestId(++next_request_id_);
  m.SetStep(step);
  m.header().setShardMapVersion(map_->version());
  auto d = m.header().getBody().initData();
  d.setParamId(param_id);
  d.setKind(kind == ParamKind::kSparse ? wire::capnp::ParamKind::SPARSE : wire::capnp::ParamKind::DENSE);
  return m;
}

OutMessage Client::NewDensePiece(Op op, uint32_t param_id, const DensePiece& piece, int64_t step) {
  OutMessage m = NewData(op, param_id, ParamKind::kDense, step);
  auto d = m.header().getBody().getData();
  d.setBegin(piece.begin);
  d.setEnd(piece.end);
  return m;
}

void Client::SendToServer(uint32_t server, OutMessage&& msg, Part part) {
  stats_.requests++;
  stats_.bytes_pushed += msg.payload_bytes();
  part.deadline = Clock::now() + options_.request_timeout;
  // Leader/follower (issue 17): the caller sends the request itself, holding the loop
  // lock, and whoever waits on the handle reads the reply itself (Handle::SetLeader): no
  // eventfd wake-up of the loop to send, no condvar wake-up to hand the reply back.
  // To a same-host server too: the caller then copies the gradient into the arena and
  // reads the reply's descriptor from the local link (a leader polls the link's fd),
  // where the loop once did both: two hand-offs per request (docs/benchmarks-shm.md).
  if (leader_ != nullptr && server < server_tcp_only_.size()) {
    part.handle.SetLeader(leader_);
    if (reactor_->RunInline([&] { SendNow(server, std::move(msg), std::move(part)); })) return;
  } else if (server < server_tcp_only_.size() && server_tcp_only_[server]) {
    // Not leading, the caller still sends itself while the loop sleeps: no eventfd wake-up
    // of the loop per request. While the loop runs its turn (it just completed the
    // caller's previous request, say) it takes the post instead: waiting for its lock
    // cost the caller a sleep as often as it saved the loop one (docs/benchmarks-transport.md).
    if (reactor_->TryRunInline([&] { SendNow(server, std::move(msg), std::move(part)); })) return;
  }
  auto holder = std::make_shared<OutMessage>(std::move(msg));
  auto shared_part = std::make_shared<Part>(std::move(part));
  bool posted = reactor_->Post([this, server, holder, shared_part] {
    // Moved, not copied: a copy cost a string and a Handle reference per request.
    SendNow(server, std::move(*holder), std::move(*shared_part));
  });
  if (!posted) shared_part->handle.CompletePart(Status::Aborted("client is closed"));
}

void Client::SendNow(uint32_t server, OutMessage&& msg, Part&& part) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!health_.ok()) return part.handle.CompletePart(health_.WithContext(part.What()));
  }
  const uint64_t rid = msg.request_id();
  part.server = static_cast<int>(server);
  part.sent = Clock::now();
  AddPending(rid, std::move(part));
  Status st = servers_[server]->Send(std::move(msg));
  if (!st.ok()) {
    auto it = pending_.find(rid);
    if (it == pending_.end()) return;
    Part p = TakePending(it);
    p.handle.CompletePart(st.WithContext(p.What()));
  }
}

void Client::AddPending(uint64_t rid, Part&& part) {
  if (spare_parts_.empty()) {
    pending_.emplace(rid, std::move(part));
    return;
  }
  auto node = std::move(spare_parts_.back());
  spare_parts_.pop_back();
  node.key() = rid;
  node.mapped() = std::move(part);
  pending_.insert(std::move(node));
}

Client::Part Client::TakePending(std::unordered_map<uint64_t, Part>::iterator it) {
  auto node = pending_.extract(it);
  Part p = std::move(node.mapped());
  if (spare_parts_.size() < kSpareParts) spare_parts_.push_back(std::move(node));
  return p;
}

std::span<const DensePiece> Client::PipelineOverTcp(const DenseLayout& layout, std::span<const DensePiece> pieces,
                                                    std::vector<DensePiece>* cut) const {
  if (options_.tcp_request_bytes == 0) return pieces;
  // At most this many requests per piece: far below the send queue's bound (max_inflight),
  // so a huge tensor never makes the loop block in Send while replies wait to be read.
  constexpr uint64_t kMaxCuts = 64;
  const uint64_t chunk = layout.chunk_elements;
  const uint64_t wanted = std::max<uint64_t>(1, options_.tcp_request_bytes / sizeof(float) / chunk);
  // No piece longer than a request (a small tensor): nothing to cut, and no copy.
  if (std::all_of(pieces.begin(), pieces.end(), [&](const DensePiece& p) { return p.end - p.begin <= wanted * chunk; })) {
    return pieces;
  }
  std::vector<DensePiece>& out = *cut;
  out.clear();
  for (const DensePiece& p : pieces) {
    // Pieces start on a chunk boundary (SplitDense of [0, n)), so every cut is one too.
    if (p.server >= server_on_shm_.size() || server_on_shm_[p.server].load(std::memory_order_relaxed) ||
        p.begin % chunk != 0) {
      out.push_back(p);
      continue;
    }
    const uint64_t chunks = (p.end - p.begin + chunk - 1) / chunk;
    const uint64_t step = std::max(wanted, (chunks + kMaxCuts - 1) / kMaxCuts) * chunk;
    for (uint64_t b = p.begin; b < p.end; b += step) out.push_back({p.server, b, std::min(p.end, b + step)});
  }
  return out;
}

Handle Client::DenseRequest(Op op, uint32_t param_id, const TensorView& grad, const TensorView& out, int64_t step) {
  auto found = ParamOfKind(param_id, ParamKind::kDense);
  if (!found.ok()) return Handle(found.status());
  const ParamSpec* spec = *found;
  const uint64_t n = static_cast<uint64_t>(spec->numel());
  const bool pushing = op != Op::PULL, pulling = op != Op::PUSH;
  if (pushing) {
    Status st = CheckHostF32(grad, n, "gradient");
    if (!st.ok()) return Handle(st.WithContext(spec->name));
  }
  if (pulling) {
    Status st = CheckHostF32(out, n, "output");
    if (!st.ok()) return Handle(st.WithContext(spec->name));
  }
  std::vector<DensePiece> whole, cut;  // used only when the split is not kept, or is cut
  std::span<const DensePiece> split;
  if (param_id < whole_split_.size() && !whole_split_[param_id].empty()) {
    split = whole_split_[param_id];
  } else {
    auto r = map_->SplitDense(param_id, 0, n);
    if (!r.ok()) return Handle(r.status());
    whole = std::move(r).value();
    split = whole;
  }
  const std::span<const DensePiece> pieces = PipelineOverTcp(*map_->dense_layout(param_id), split, &cut);
  // The caller's gradient memory goes out as is (zero copy). One more part than pieces:
  // it completes when the last reference to `owner` dies, i.e. when ZeroMQ has released
  // every frame over the gradient (or a message was dropped before it was sent). So the
  // Handle is never done while ZeroMQ may still read the caller's memory, even after a
  // timeout or a failure completed every piece. Runs on whichever thread drops it last.
  Handle h = Handle::Pending(static_cast<int>(pieces.size()) + (pushing ? 1 : 0));
  Buffer owner = pushing ? Buffer::Wrap(grad.data, n * sizeof(float), Device::kCPU,
                                        [h] { h.CompletePart(Status::OK()); })
                         : Buffer();
  for (const DensePiece& piece : pieces) {
    OutMessage m = NewDensePiece(op, param_id, piece, step);
    // A same-host server applies a dense gradient as it arrives (wire/shm_stream.h).
    m.set_streamable(pushing);
    const uint64_t len = piece.end - piece.begin;
    if (pushing) {
      std::span<const std::byte> bytes(static_cast<const std::byte*>(grad.data) + piece.begin * sizeof(float),
                                       len * sizeof(float));
      Status st = m.AddPayload(owner, bytes, DType::kF32, len);
      if (!st.ok()) {
        h.CompletePart(st);
        continue;
      }
    }
    Part p(h);
    p.param_id = param_id;
    p.zero_copy_push = pushing;
    if (pulling) {
      p.out = out.as<float>() + piece.begin;
      p.out_elements = len;
    }
    p.dense_name = &spec->name;
    p.dense_op = op;
    p.dense_begin = piece.begin;
    p.dense_end = piece.end;
    p.server = static_cast<int>(piece.server);
    SendToServer(piece.server, std::move(m), std::move(p));
  }
  return h;
}

Handle Client::Push(uint32_t id, const TensorView& grad, int64_t step) {
  return DenseRequest(Op::PUSH, id, grad, {}, step);
}
Handle Client::Pull(uint32_t id, const TensorView& out, int64_t step) { return DenseRequest(Op::PULL, id, {}, out, step); }
Handle Client::PushPull(uint32_t id, const TensorView& grad, const TensorView& out, int64_t step) {
  return DenseRequest(Op::PUSH_PULL, id, grad, out, step);
}

Handle Client::PullStoreDigest(uint32_t table, int64_t step, bool sparse_only, uint64_t* sum) {
  const ParamSpec* spec = map_ ? map_->param(table) : nullptr;
  if (spec == nullptr || spec->kind != ParamKind::kSparse) {
    return Handle(Status::InvalidArgument("PullStoreDigest: parameter " + std::to_string(table) + " is not a sparse table"));
  }
  const uint32_t S = map_->num_servers();
  Handle h = Handle::Pending(static_cast<int>(S));
  for (uint32_t s = 0; s < S; ++s) {
    OutMessage m = NewData(Op::PULL, table, ParamKind::kSparse, step);
    auto d = m.header().getBody().getData();
    d.setNumKeys(0);
    d.setWantDigest(sparse_only ? 2 : 1);
    Status a = m.AddPayload(Buffer::Allocate(0), DType::kU64, 0);
    if (!a.ok()) {
      h.CompletePart(a);
      continue;
    }
    Part p;
    p.handle = h;
    p.param_id = table;
    p.digest_sum = sum;
    p.what = "store digest of server " + std::to_string(s);
    SendToServer(s, std::move(m), std::move(p));
  }
  return h;
}

Status Client::Finish(int exit_code, const std::string& reason) {
  reactor_->Post([this, exit_code, reason] {
    // A coordinator that already stopped the job is gone or going: telling it would only
    // make this process wait out the socket's linger time.
    if (coordinator_stopped_) return;
    OutMessage m(Op::SHUTDOWN);
    auto sd = m.header().getBody().initShutdown();
    sd.setExitCode(exit_code);
    sd.setReason(reason);
    control_->Send(std::move(m)).IgnoreError();
  });
  reactor_->Stop();  // runs the posted send first; the socket's linger flushes it
  return Status::OK();
}

}  // namespace tessera::worker
