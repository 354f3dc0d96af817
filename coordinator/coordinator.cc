#include "coordinator/coordinator.h"

#include "common/hostname.h"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>

#include "common/exit_codes.h"
#include "wire/shard_map_wire.h"
#include "wire/metrics_wire.h"

namespace tessera {

using wire::InMessage;
using wire::Op;
using wire::OutMessage;
using wire::Socket;

Result<std::unique_ptr<Coordinator>> Coordinator::Start(CoordinatorOptions options,
                                                        std::shared_ptr<wire::Context> ctx) {
  if (options.num_servers < 1 || options.num_workers < 1) {
    return Status::InvalidArgument("a job needs at least 1 server and 1 worker (got " +
                                   std::to_string(options.num_servers) + " and " +
                                   std::to_string(options.num_workers) + ")");
  }
  TESSERA_ASSIGN_OR_RETURN(auto reactor, wire::Reactor::Create());
  wire::SocketOptions so;
  so.decode.expected_job_id = options.job_id;
  so.stamp_sender = true;
  so.job_id = options.job_id;
  so.role = wire::Role::COORDINATOR;
  so.rank = 0;
  TESSERA_ASSIGN_OR_RETURN(auto sock, Socket::Create(ctx, wire::SocketType::kRouter, so));
  TESSERA_ASSIGN_OR_RETURN(std::string ep, options.listen_fd >= 0 ? sock->BindListeningFd(options.bind, options.listen_fd)
                                                                   : sock->Bind(options.bind));
  auto driver = std::make_unique<CheckpointDriver>(options.checkpoint, options.num_servers, options.num_workers);
  TESSERA_RETURN_IF_ERROR(driver->Init());
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options), std::move(reactor)));
  c->endpoint_ = ep;
  Coordinator* self = c.get();
  c->checkpoints_ = std::move(driver);
  c->checkpoints_->SetHooks(
      &c->members_, [self](OutMessage&& m, const std::string& to) { return self->socket_->Send(std::move(m), to); },
      [self](Status st, int code) { self->Finish(std::move(st), code); });
  c->socket_ = c->reactor_->AddSocket(std::move(sock), [self](Socket& s, InMessage&& m) {
    self->OnMessage(s, std::move(m));
  });
  auto tick = std::min<Duration>(c->options_.heartbeat_interval, std::chrono::milliseconds(250));
  c->reactor_->RunEvery(tick, [self] {
    self->CheckHeartbeats();
    self->CheckStall();
    if (!self->finished_) self->checkpoints_->Tick();
    self->OnMetricsTick();
  });
  c->reactor_->RunAfter(c->options_.register_timeout, [self] { self->CheckRegistrationDeadline(); });
  if (c->options_.metrics.port > 0) {
    MetricsStore* store = &c->metrics_store_;
    TESSERA_ASSIGN_OR_RETURN(c->http_, MetricsHttpServer::Start(c->options_.metrics.bind, c->options_.metrics.port,
                                                                [store] { return store->PrometheusText(); }));
    LOG(INFO) << "metrics at http://" << c->options_.metrics.bind << ":" << c->http_->port() << "/metrics";
  }
  TESSERA_RETURN_IF_ERROR(c->reactor_->Start());
  LOG(INFO) << "coordinator listening on " << ep << " for " << c->options_.num_servers
            << " servers and " << c->options_.num_workers << " workers";
  return c;
}

Coordinator::Coordinator(CoordinatorOptions options, std::unique_ptr<wire::Reactor> reactor)
    : options_(std::move(options)),
      reactor_(std::move(reactor)),
      members_(options_.num_servers, options_.num_workers),
      declared_(static_cast<size_t>(options_.num_workers), false),
      server_ready_(static_cast<size_t>(options_.num_servers), false) {}

Coordinator::~Coordinator() {
  http_.reset();
  reactor_->Stop();
  if (metrics_fd_ >= 0) ::close(metrics_fd_);
}

OutMessage Coordinator::NewMessage(Op op) {
  OutMessage m(op);
  m.SetRequestId(++next_request_id_);
  return m;
}

void Coordinator::OnMessage(Socket& sock, InMessage&& msg) {
  if (finished_) return;
  const Op op = msg.op();
  if (op == Op::REGISTER) return OnRegister(sock, msg);
  if (op == Op::STATUS) return OnStatus(sock, msg);
  Member* m = members_.Touch(msg.routing_id(), Clock::now());
  if (m == nullptr) {
    sock.Send(wire::MakeErrorReply(msg, Status::FailedPrecondition(
                                            "not registered: register with the coordinator first")))
        .IgnoreError();
    return;
  }
  switch (op) {
    case Op::HEARTBEAT: {
      if (msg.header().getBody().isHeartbeat()) {
        auto hb = msg.header().getBody().getHeartbeat();
        m->step = hb.getStep();
        if (hb.hasMetrics() && hb.getMetrics().size() > 0) {
          metrics_store_.Update(m->role == MemberRole::kServer ? "server" : "worker", m->rank,
                                wire::SamplesFromWire(hb.getMetrics()), Clock::now());
        }
      }
      OutMessage rep = wire::MakeReply(msg, Op::HEARTBEAT);
      // A gone peer is caught by its own heartbeat check; a late answer is worthless.
      sock.SendIfRoom(std::move(rep)).IgnoreError();
      return;
    }
    case Op::DECLARE_PARAMS: return OnDeclareParams(sock, msg, *m);
    case Op::RESPONSE: return OnServerReady(msg, *m);
    case Op::BARRIER: return OnBarrier(sock, msg, *m);
    case Op::STEP_DONE: {
      auto r = msg.header().getBody().getStepDone();
      m->step = r.getStep();
      m->loss = r.getLoss();
      checkpoints_->OnStepReport(m->step);
      return;
    }
    case Op::CKPT_DONE: return checkpoints_->OnDone(*m, msg);
    case Op::PREEMPT: {
      auto body = msg.header().getBody();
      if (!body.isPreempt()) return;
      return checkpoints_->OnPreempt(members_.Describe(m->rank), body.getPreempt().getSignal(),
                                     body.getPreempt().getUrgent());
    }
    case Op::SHUTDOWN: return OnShutdown(msg, *m);
    case Op::RENDEZVOUS: return OnRendezvous(sock, msg, *m);
    case Op::ERROR:
      LOG(WARNING) << members_.Describe(m->rank) << " reported: " << wire::StatusFromError(msg).ToString();
      return;
    default:
      sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("the coordinator does not handle op " +
                                                                  wire::OpName(op))))
          .IgnoreError();
  }
}

void Coordinator::OnRegister(Socket& sock, const InMessage& msg) {
  auto body = msg.header().getBody();
  if (!body.isRegister()) {
    sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("register without a RegisterRequest"))).IgnoreError();
    return;
  }
  auto r = body.getRegister();
  MemberRole role;
  if (r.getRole() == wire::Role::SERVER) role = MemberRole::kServer;
  else if (r.getRole() == wire::Role::WORKER) role = MemberRole::kWorker;
  else {
    sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("only servers and workers register"))).IgnoreError();
    return;
  }
  if (map_ != nullptr && !published_to_workers_ && role == MemberRole::kServer) {
    // Falls through to Register, which refuses the duplicate rank.
  }
  Status st = members_.Register(role, r.getRank(), static_cast<int>(r.getNumServers()),
                                static_cast<int>(r.getNumWorkers()), msg.routing_id(), r.getHost().cStr(),
                                r.getDataEndpoint().cStr(), r.getPid(), Clock::now());
  if (!st.ok()) {
    LOG(WARNING) << "refused registration from " << r.getHost().cStr() << " pid " << r.getPid() << ": "
                 << st.ToString();
    sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
    return;
  }
  VLOG(1) << "registered " << members_.Describe(r.getRank()) << " from " << r.getHost().cStr();
  OutMessage rep = wire::MakeReply(msg, Op::WELCOME);
  auto w = rep.header().getBody().initWelcome();
  w.setNumServers(static_cast<uint32_t>(options_.num_servers));
  w.setNumWorkers(static_cast<uint32_t>(options_.num_workers));
  w.setHeartbeatIntervalMs(static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat_interval).count()));
  w.setHeartbeatTimeoutMs(static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.heartbeat_timeout).count()));
  checkpoints_->FillWelcome(*members_.FindByRank(r.getRank()), w);
  sock.Send(std::move(rep)).IgnoreError();
  MaybePublishToServers();
}

void Coordinator::OnDeclareParams(Socket& sock, const InMessage& msg, Member& m) {
  if (m.role != MemberRole::kWorker || !msg.header().getBody().isDeclareParams()) {
    sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("only workers declare parameters"))).IgnoreError();
    return;
  }
  auto specs = ParamSpecsFromWire(msg.header().getBody().getDeclareParams());
  Status st = specs.status();
  if (st.ok() && specs->empty()) st = Status::InvalidArgument("the model declares no parameters");
  if (st.ok() && !params_.empty()) st = CheckSameParams(params_, *specs).WithContext(members_.Describe(m.rank) + " declares a different model than worker 0");
  if (st.ok()) {
    for (const ParamSpec& p : *specs) {
      st = ValidateParamSpec(p);
      if (!st.ok()) break;
    }
  }
  if (!st.ok()) {
    sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
    Finish(st, kExitConfig);
    return;
  }
  if (params_.empty()) {
    st = checkpoints_->CheckModel(*specs);
    if (!st.ok()) {
      sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
      Finish(st, kExitConfig);
      return;
    }
    params_ = *specs;
  }
  declared_[static_cast<size_t>(m.rank - 1 - options_.num_servers)] = true;
  sock.Send(wire::MakeReply(msg, Op::RESPONSE)).IgnoreError();
  MaybePublishToServers();
}

void Coordinator::MaybePublishToServers() {
  if (map_ != nullptr || !members_.AllRegistered()) return;
  for (bool d : declared_) {
    if (!d) return;
  }
  std::vector<ServerEndpoint> servers;
  for (const Member& m : members_.members()) {
    if (m.role == MemberRole::kServer) servers.push_back({m.rank, m.data_endpoint});
  }
  ShardMapOptions so = options_.shard;
  so.num_workers = static_cast<uint32_t>(options_.num_workers);
  auto map = ShardMap::Build(so, std::move(servers), params_);
  if (!map.ok()) {
    Finish(map.status().WithContext("building the shard map"), kExitConfig);
    return;
  }
  map_ = std::make_unique<ShardMap>(std::move(map).value());
  LOG(INFO) << "everyone is in: shard map v" << map_->version() << " with " << map_->num_params()
            << " parameters over " << map_->num_servers() << " servers, sync=" << map_->sync().ToString();
  for (const Member& m : members_.members()) {
    if (m.role != MemberRole::kServer) continue;
    OutMessage out = NewMessage(Op::SHARD_MAP);
    ShardMapToWire(map_->data(), out.header().getBody().initShardMap());
    Status st = socket_->Send(std::move(out), m.routing_id);
    if (!st.ok()) return Finish(st.WithContext("sending the shard map to " + members_.Describe(m.rank)), kExitPeerFailure);
  }
}

void Coordinator::OnServerReady(const InMessage& msg, Member& m) {
  if (m.role != MemberRole::kServer || map_ == nullptr) return;
  server_ready_[static_cast<size_t>(m.rank - 1)] = true;
  for (bool r : server_ready_) {
    if (!r) return;
  }
  if (!published_to_workers_) PublishToWorkers();
}

void Coordinator::PublishToWorkers() {
  published_to_workers_ = true;
  for (const Member& m : members_.members()) {
    if (m.role != MemberRole::kWorker) continue;
    OutMessage out = NewMessage(Op::SHARD_MAP);
    ShardMapToWire(map_->data(), out.header().getBody().initShardMap());
    Status st = socket_->Send(std::move(out), m.routing_id);
    if (!st.ok()) return Finish(st.WithContext("sending the shard map to " + members_.Describe(m.rank)), kExitPeerFailure);
  }
  LOG(INFO) << "all servers hold their shards; training starts";
  stall_.Start(Clock::now());
  checkpoints_->OnTrainingStarted(params_);
}

void Coordinator::OnBarrier(Socket& sock, const InMessage& msg, Member& m) {
  if (m.role != MemberRole::kWorker) {
    sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("only workers join barriers"))).IgnoreError();
    return;
  }
  auto body = msg.header().getBody();
  uint64_t id = body.isBarrier() ? body.getBarrier().getBarrierId() : 0;
  if (barrier_waiting_.empty()) {
    barrier_id_ = id;
    barrier_final_step_ = -1;
  }
  if (id != barrier_id_) {
    sock.Send(wire::MakeErrorReply(msg, Status::FailedPrecondition(
                                            "barrier " + std::to_string(id) + " while barrier " +
                                            std::to_string(barrier_id_) + " is open")))
        .IgnoreError();
    return;
  }
  barrier_waiting_.push_back(msg.routing_id());
  if (body.isBarrier()) barrier_final_step_ = std::max(barrier_final_step_, body.getBarrier().getFinalStep());
  // The reply is built now (it echoes this request's id) and sent when the barrier opens.
  // The codec requires a barrier message to carry its body.
  OutMessage reply = wire::MakeReply(msg, Op::BARRIER);
  reply.header().getBody().initBarrier().setBarrierId(id);
  pending_barrier_replies_.push_back(std::move(reply));
  if (static_cast<int>(barrier_waiting_.size()) < options_.num_workers) return;
  auto release = [this, &sock] {
    for (auto& rep : pending_barrier_replies_) sock.Send(std::move(rep)).IgnoreError();
    pending_barrier_replies_.clear();
    barrier_waiting_.clear();
  };
  if (barrier_final_step_ < 0) return release();
  // Training is over everywhere: the final checkpoint's prepare goes out before the
  // replies, so each worker has it when it leaves the barrier (possibly later, after an
  // earlier checkpoint's write: CheckpointDriver::OnJobEnd).
  checkpoints_->OnJobEnd(barrier_final_step_, release);
}

void Coordinator::OnShutdown(const InMessage& msg, Member& m) {
  auto body = msg.header().getBody();
  int code = body.isShutdown() ? body.getShutdown().getExitCode() : 0;
  std::string reason = body.isShutdown() ? body.getShutdown().getReason().cStr() : "";
  if (code != 0) {
    Finish(Status::Aborted(members_.Describe(m.rank) + " failed: " + reason), code);
    return;
  }
  m.finished = true;
  LOG(INFO) << members_.Describe(m.rank) << " finished" << (reason.empty() ? "" : ": " + reason);
  if (m.role == MemberRole::kWorker && members_.AllWorkersFinished()) {
    if (checkpoints_->HoldJobEnd([this] { Finish(Status::OK(), kExitOk); })) return;
    Finish(Status::OK(), kExitOk);
  }
}

void Coordinator::OnRendezvous(Socket& sock, const InMessage& msg, const Member& m) {
  auto r = msg.header().getBody().getRendezvous();  // the codec admits no other body for this op
  const std::string key = r.getKey().cStr();
  const std::string who = members_.Describe(m.rank);
  Status st = m.role == MemberRole::kWorker
                  ? RendezvousStore::CheckKey(key)
                  : Status::FailedPrecondition("rendezvous is for workers; " + who + " is not one");
  if (st.ok() && r.getPut()) {
    auto v = r.getValue();
    st = rendezvous_.Put(key, std::string(reinterpret_cast<const char*>(v.begin()), v.size()), who);
  }
  if (!st.ok()) {
    LOG(WARNING) << "refused a rendezvous request from " << who << ": " << st.ToString();
    sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
    return;
  }
  OutMessage rep = wire::MakeReply(msg, Op::RENDEZVOUS);
  auto out = rep.header().getBody().initRendezvous();
  out.setKey(key);
  if (auto value = rendezvous_.Get(key)) {
    out.setFound(true);
    out.setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(value->data()), value->size()));
  }
  sock.Send(std::move(rep)).IgnoreError();
}

void Coordinator::OnStatus(Socket& sock, const InMessage& msg) {
  OutMessage rep = wire::MakeReply(msg, Op::STATUS);
  FillStatus(rep.header().getBody().initStatus());
  sock.Send(std::move(rep)).IgnoreError();
}

void Coordinator::CheckHeartbeats() {
  if (finished_) return;
  auto silent = members_.FindSilent(Clock::now(), options_.heartbeat_timeout);
  if (!silent) return;
  Finish(Status::Unavailable(members_.DescribeSilent(*silent, Clock::now(), options_.heartbeat_timeout, Hostname()) +
                             ": declared dead; " + checkpoints_->ResumeHint()),
         kExitPeerFailure);
}

void Coordinator::CheckStall() {
  if (finished_ || !published_to_workers_) return;
  std::vector<WorkerProgress> workers;
  const auto now = Clock::now();
  for (const Member& m : members_.members()) {
    if (m.role == MemberRole::kWorker && !m.finished) {
      workers.push_back({m.rank, members_.Describe(m.rank), m.step, now - m.last_seen});
    }
  }
  // Time spent checkpointing is not a stall (workers may wait at the boundary for it).
  stall_.SetPaused(checkpoints_->checkpointing(), now);
  StallVerdict v = stall_.Check(workers, now);
  if (v.kind == StallVerdict::kWarn) LOG(WARNING) << "stall: " << v.message;
  if (v.kind == StallVerdict::kTimeout) Finish(Status::TimedOut("stall: " + v.message), kExitTimeout);
}

void Coordinator::CheckRegistrationDeadline() {
  if (finished_ || published_to_workers_) return;
  std::string missing = members_.DescribeMissing();
  std::string what = missing.empty() ? "parameter declarations or server readiness" : missing;
  Finish(Status::TimedOut("timed out after " +
                          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(options_.register_timeout).count()) +
                          " s waiting for: " + what +
                          (missing.empty() ? "" : " (each one's own log says why it did not register: a wrong coordinator "
                                                  "address or port, a firewall, or another job key)")),
         kExitTimeout);
}

void Coordinator::SendShutdown(const Member& m, const std::string& reason, int exit_code) {
  OutMessage out = NewMessage(Op::SHUTDOWN);
  auto sd = out.header().getBody().initShutdown();
  sd.setReason(reason);
  sd.setExitCode(exit_code);
  socket_->Send(std::move(out), m.routing_id).IgnoreError();  // the peer may be the dead one
}

void Coordinator::Finish(Status status, int exit_code) {
  if (finished_) return;
  finished_ = true;
  if (status.ok()) {
    LOG(INFO) << "job finished: all " << options_.num_workers << " workers done";
  } else {
    LOG(ERROR) << "job failed: " << status.ToString();
  }
  // The receivers stop with an Aborted status of their own: an Aborted reason goes
  // without its code, so their logs do not read "Aborted: Aborted: ...".
  std::string reason = status.ok()                                ? "job finished"
                       : status.code() == StatusCode::kAborted ? status.message()
                                                                : status.ToString();
  for (const Member& m : members_.members()) {
    if (m.registered && !(m.finished && m.role == MemberRole::kWorker)) SendShutdown(m, reason, exit_code);
  }
  std::lock_guard<std::mutex> l(mu_);
  done_ = true;
  outcome_ = {std::move(status), exit_code};
  done_cv_.notify_all();
}

void Coordinator::Abort(const std::string& reason, int exit_code) {
  reactor_->Post([this, reason, exit_code] { Finish(Status::Aborted(reason), exit_code); });
}

void Coordinator::Preempt(int signal, bool urgent) {
  reactor_->Post([this, signal, urgent] {
    if (!finished_) checkpoints_->OnPreempt("the coordinator", signal, urgent);
  });
}

JobOutcome Coordinator::Wait(Duration timeout) {
  std::unique_lock<std::mutex> l(mu_);
  if (!done_cv_.wait_for(l, timeout, [this]() REQUIRES(mu_) { return done_; })) {
    return {Status::TimedOut("job still running"), kExitTimeout};
  }
  JobOutcome o = outcome_;
  l.unlock();
  reactor_->Stop();  // runs what is posted, then closes the socket; linger flushes Shutdowns
  return o;
}

}  // namespace tessera
