#include "paramserver/server.h"

#include <glog/logging.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <optional>

#include "checkpoint/crash_point.h"
#include "common/exit_codes.h"
#include "common/hostname.h"
#include "common/shared_marker.h"
#include "common/stream_copy.h"
#include "common/timeline.h"
#include "wire/shard_map_wire.h"
#include "paramserver/request_decode.h"

namespace tessera::paramserver {

using wire::InMessage;
using wire::Op;
using wire::OutMessage;
using wire::Socket;

namespace {

// "tcp://0.0.0.0:5555" + "node3" -> "tcp://node3:5555"; a port > 0 replaces the bound one.
std::string Advertised(const std::string& bound, const std::string& host, int port) {
  const auto colon = bound.rfind(':');
  std::string out = host.empty() ? bound.substr(0, colon) : "tcp://" + host;
  return out + (port > 0 ? ":" + std::to_string(port) : bound.substr(colon));
}

}  // namespace

Result<std::unique_ptr<ParamServer>> ParamServer::Start(ServerOptions options,
                                                        std::shared_ptr<wire::Context> ctx) {
  if (options.rank < 1 || options.rank > options.num_servers) {
    return Status::InvalidArgument("server rank " + std::to_string(options.rank) + " outside 1.." +
                                   std::to_string(options.num_servers));
  }
  TESSERA_ASSIGN_OR_RETURN(auto reactor, wire::Reactor::Create());
  wire::SocketOptions so;
  so.decode.expected_job_id = options.job_id;
  so.stamp_sender = true;
  so.job_id = options.job_id;
  so.role = wire::Role::SERVER;
  so.rank = options.rank;
  so.send_hwm = so.recv_hwm = options.max_inflight;
  wire::SocketOptions data_opts = so;
  data_opts.linger_ms = 0;  // replies still queued at shutdown have nobody waiting for them
  // A reply answers a request ZeroMQ's receive bound already admitted, and a dropped one
  // leaves its worker waiting out the request's deadline: no count bound (one broke
  // ParamServerStress at --max_inflight=8). A peer that never reads is bounded instead by
  // age (a reply gives up after send_timeout_ms, as main's blocking send did, without
  // holding the loop) and by bytes (its backlog goes first, others' replies stay).
  data_opts.outbox_hwm = 0;
  data_opts.outbox_max_age_ms = data_opts.send_timeout_ms;
  data_opts.outbox_max_bytes = options.outbox_bytes;
  data_opts.shm.accept_streamed = true;  // OnData waits on streamed payloads (wire/shm_stream.h)
  TESSERA_ASSIGN_OR_RETURN(auto data, Socket::Create(ctx, wire::SocketType::kRouter, data_opts));
  TESSERA_ASSIGN_OR_RETURN(std::string bound, data->Bind(options.bind));
  wire::SocketOptions co = so;
  co.routing_id = "rank-" + std::to_string(options.rank);
  co.send_hwm = co.recv_hwm = 1000;
  TESSERA_ASSIGN_OR_RETURN(auto control, Socket::Create(ctx, wire::SocketType::kDealer, co));
  TESSERA_RETURN_IF_ERROR(control->Connect(options.coordinator));

  std::unique_ptr<ParamServer> s(new ParamServer(std::move(options), std::move(reactor)));
  s->data_endpoint_ = Advertised(bound, s->options_.advertise_host, s->options_.advertise_port);
  ParamServer* self = s.get();
  s->data_ = s->reactor_->AddSocket(std::move(data), [self](Socket& k, InMessage&& m) { self->OnData(k, std::move(m)); });
  s->control_ = s->reactor_->AddSocket(std::move(control), [self](Socket& k, InMessage&& m) { self->OnControl(k, std::move(m)); });
  s->coordinator_seen_ = Clock::now();

  OutMessage reg(Op::REGISTER);
  reg.SetRequestId(1);
  auto r = reg.header().getBody().initRegister();
  r.setRole(wire::Role::SERVER);
  r.setRank(s->options_.rank);
  r.setHost(Hostname());
  r.setDataEndpoint(s->data_endpoint_);
  r.setPid(static_cast<uint32_t>(getpid()));
  r.setNumServers(static_cast<uint32_t>(s->options_.num_servers));
  r.setNumWorkers(static_cast<uint32_t>(s->options_.num_workers));
  TESSERA_RETURN_IF_ERROR(s->control_->Send(std::move(reg)));
  s->reactor_->RunAfter(s->options_.register_timeout, [self] {
    if (!self->core_ && !self->finished_) {
      self->Finish(Status::TimedOut("no shard map from the coordinator at " + self->options_.coordinator +
                                    " within the registration timeout (can this host reach it? under --auth=mac or "
                                    "curve, is this host's job key file the one rank 0 uses, on shared storage?)"),
                   kExitTimeout);
    }
  });
  TESSERA_RETURN_IF_ERROR(s->reactor_->Start());
  LOG(INFO) << "server serving on " << s->data_endpoint_;
  return s;
}

ParamServer::ParamServer(ServerOptions options, std::unique_ptr<wire::Reactor> reactor)
    : options_(std::move(options)),
      reactor_(std::move(reactor)),
      reporter_([this](std::vector<metrics::Sample>& out) {
        out.push_back({"parked_requests", metrics::Kind::kGauge, static_cast<double>(parked_.size()), 0, -1});
        if (data_ != nullptr) {
          out.push_back({"reply_outbox_bytes", metrics::Kind::kGauge, static_cast<double>(data_->outbox_bytes()), 0, -1});
          out.push_back({"replies_dropped_total", metrics::Kind::kCounter,
                         static_cast<double>(data_->outbox_dropped()), 0, -1});
        }
        if (core_) ReportTableMetrics(out);
      }) {}

Status ParamServer::ApplyTableLimits() {
  const ShardMap& map = core_->map();
  const TableLimits& l = options_.table_limits;
  // The job-wide budget: the checkpoint's on a resume that keeps the flags (the
  // coordinator logs the decision; every server takes the same one from the manifest).
  std::optional<checkpoint::Manifest> resumed;
  if (resume_step_ >= 0) {
    auto m = checkpoint::ReadManifest(resume_path_);
    TESSERA_RETURN_IF_ERROR(m.status());
    resumed = std::move(m).value();
  }
  const checkpoint::TableBudget budget = checkpoint::ResolveTableBudget(
      l.budget_flags, static_cast<int>(map.num_servers()), resumed ? &*resumed : nullptr);
  size_t named = 0;
  for (uint32_t id = 0; id < map.num_params(); ++id) {
    const ParamSpec& spec = *map.param(id);
    if (spec.kind != ParamKind::kSparse) continue;
    TablePolicy p = l.policy;
    p.memory_servers = static_cast<uint32_t>(budget.servers);
    if (auto it = l.memory_limits.find(spec.name); it != l.memory_limits.end()) {
      p.memory_limit = it->second;
      ++named;
    }
    TESSERA_RETURN_IF_ERROR_CTX(core_->mutable_store().SetTablePolicy(id, p), "table '" + spec.name + "'");
  }
  if (named != l.memory_limits.size()) {
    std::string names;
    for (const auto& [name, bytes] : l.memory_limits) names += (names.empty() ? "" : ", ") + name;
    return Status::InvalidArgument("--table_memory_limit_per_table names a table this job does not have (" +
                                   names + ")");
  }
  return Status::OK();
}

std::pair<uint64_t, uint64_t> ParamServer::TEST_DataOutbox() {
  auto done = std::make_shared<std::promise<std::pair<uint64_t, uint64_t>>>();
  auto f = done->get_future();
  if (!reactor_->Post([this, done] { done->set_value({data_->outbox_bytes(), data_->outbox_dropped()}); })) {
    return {0, 0};
  }
  return f.wait_for(std::chrono::seconds(10)) == std::future_status::ready ? f.get() : std::pair<uint64_t, uint64_t>{0, 0};
}

void ParamServer::ReportTableMetrics(std::vector<metrics::Sample>& out) const {
  // Per table (label table="name", for the first kMaxLabelledTables tables: a heartbeat
  // carries at most wire::kMaxMetricSamples samples), and summed over the tables.
  constexpr size_t kMaxLabelledTables = 256;
  TableStats sum;
  uint64_t rows = 0, bytes = 0;
  size_t labelled = 0;
  const ShardStore& store = core_->store();
  for (uint32_t id = 0; id < core_->map().num_params(); ++id) {
    const RowTable* t = store.table(id);
    if (t == nullptr) continue;
    const TableStats s = store.table_stats(id);
    const std::string& name = core_->map().param(id)->name;
    if (labelled < kMaxLabelledTables && wire::ValidTableLabel(name)) {
      ++labelled;
      const auto add = [&](const char* metric, metrics::Kind kind, uint64_t v) {
        out.push_back({metric, kind, static_cast<double>(v), 0, -1, name});
      };
      add("sparse_table_resident_rows", metrics::Kind::kGauge, t->size());
      add("sparse_table_resident_bytes", metrics::Kind::kGauge, t->ResidentBytes());
      add("sparse_table_rows_created_total", metrics::Kind::kCounter, s.created);
      add("sparse_table_rows_evicted_total", metrics::Kind::kCounter, s.evicted);
      add("sparse_table_rows_expired_total", metrics::Kind::kCounter, s.expired);
      add("sparse_table_rows_not_admitted_total", metrics::Kind::kCounter, s.dropped);
    }
    sum.created += s.created;
    sum.evicted += s.evicted;
    sum.expired += s.expired;
    sum.dropped += s.dropped;
    rows += t->size();
    bytes += t->ResidentBytes();
  }
  out.push_back({"sparse_resident_rows", metrics::Kind::kGauge, static_cast<double>(rows), 0, -1});
  if (store.split_work()) {
    out.push_back({"sparse_helper_ranges_total", metrics::Kind::kCounter,
                   static_cast<double>(store.split_helper_ranges()), 0, -1});
  }
  out.push_back({"sparse_resident_bytes", metrics::Kind::kGauge, static_cast<double>(bytes), 0, -1});
  out.push_back({"sparse_rows_created_total", metrics::Kind::kCounter, static_cast<double>(sum.created), 0, -1});
  out.push_back({"sparse_rows_evicted_total", metrics::Kind::kCounter, static_cast<double>(sum.evicted), 0, -1});
  out.push_back({"sparse_rows_expired_total", metrics::Kind::kCounter, static_cast<double>(sum.expired), 0, -1});
  out.push_back(
      {"sparse_rows_not_admitted_total", metrics::Kind::kCounter, static_cast<double>(sum.dropped), 0, -1});
}

ParamServer::~ParamServer() { reactor_->Stop(); }

void ParamServer::OnControl(Socket& sock, InMessage&& msg) {
  coordinator_seen_ = Clock::now();
  auto body = msg.header().getBody();
  switch (msg.op()) {
    case Op::WELCOME: {
      if (welcomed_) return;
      welcomed_ = true;
      auto w = body.getWelcome();
      heartbeat_timeout_ = std::chrono::milliseconds(w.getHeartbeatTimeoutMs());
      resume_step_ = w.getResumeStep();
      resume_path_ = w.getCheckpointPath().cStr();
      if (Status st = CheckSharedMarker(w.getSharedMarker().cStr()); !st.ok()) {
        // Tell the coordinator, so the job ends at once and its message names this node.
        OutMessage out(Op::SHUTDOWN);
        auto sd = out.header().getBody().initShutdown();
        sd.setExitCode(kExitConfig);
        sd.setReason(st.message());
        control_->Send(std::move(out)).IgnoreError();
        return Finish(st, kExitConfig);
      }
      auto interval = std::chrono::milliseconds(std::max<uint32_t>(50, w.getHeartbeatIntervalMs()));
      reactor_->RunEvery(interval, [this] { Heartbeat(); });
      return;
    }
    case Op::SHARD_MAP: {
      auto map = ShardMapFromWire(body.getShardMap());
      Status st = map.status();
      if (st.ok()) {
        AggregatorOptions ao = options_.aggregator;
        if (resume_step_ >= 0) ao.first_step = resume_step_;  // pushes before it are refused
        auto core = ParamServerCore::Create(std::move(map).value(), static_cast<uint32_t>(options_.rank - 1), ao);
        st = core.status();
        if (st.ok()) core_.emplace(std::move(core).value());
        if (st.ok()) core_->mutable_store().SetSplitWork(options_.threads > 1);
        if (st.ok()) st = ApplyTableLimits();
        if (st.ok() && resume_step_ >= 0) st = RestoreShards(resume_path_, *core_);
        if (st.ok()) {
          checkpoints_ = std::make_unique<CheckpointParticipant>(
              core_->server(), options_.checkpoint_write,
              [this](std::function<void()> fn) { reactor_->Post(std::move(fn)); },
              [this](const CheckpointReport& r) {
                if (finished_) return;
                OutMessage out(Op::CKPT_DONE);
                out.SetStep(r.step);
                auto d = out.header().getBody().initCkptDone();
                d.setStep(r.step);
                d.setOk(r.ok);
                d.setMessage(r.message);
                d.setDigest(r.digest);
                d.setStoreDigest(r.store_digest);
                d.setRecords(r.records);
                d.setBytesWritten(r.bytes);
                if (r.ok) {
                  auto& reg = metrics::Global();
                  reg.GetGauge("checkpoint_write_seconds").Set(r.write_s);
                  reg.GetGauge("checkpoint_snapshot_seconds").Set(r.snapshot_s);
                  reg.GetCounter("checkpoint_bytes_total").Add(r.bytes);
                  reg.GetCounter("checkpoints_total").Add(1);
                  VLOG(1) << "checkpoint of step " << r.step << ": " << r.bytes << " bytes written in " << r.write_s
                          << " s (snapshot " << r.snapshot_s * 1e3 << " ms)";
                } else {
                  LOG(WARNING) << "checkpoint of step " << r.step << " failed here: " << r.message;
                }
                control_->Send(std::move(out)).IgnoreError();
                checkpoint::CrashPoint("after_done");
              },
              options_.dense_on_workers);
        }
      }
      if (!st.ok()) {
        sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
        return Finish(st.WithContext("creating shards"), kExitConfig);
      }
      LOG(INFO) << "holding the shards of map v" << core_->map().version() << " (" << core_->map().ServerBytes(core_->server()) << " dense bytes)";
      sock.Send(wire::MakeReply(msg, Op::RESPONSE)).IgnoreError();
      return;
    }
    case Op::HEARTBEAT: return;
    case Op::CKPT_PREPARE: {
      if (!core_ || !checkpoints_) return;
      auto p = body.getCkptPrepare();
      checkpoints_->OnPrepare(p.getStep(), p.getDirectory().cStr(), p.getFull(), *core_);
      return;
    }
    case Op::CKPT_COMMIT: {
      if (!core_ || !checkpoints_) return;
      auto c = body.getCkptCommit();
      checkpoints_->OnCommit(c.getStep(), c.getCommitted(), *core_);
      return;
    }
    case Op::SHUTDOWN: {
      auto sd = body.getShutdown();
      int code = sd.getExitCode();
      return Finish(code == 0 ? Status::OK() : Status::Aborted(sd.getReason().cStr()), code);
    }
    case Op::ERROR: {
      Status st = wire::StatusFromError(msg);
      return Finish(st.WithContext("the coordinator refused us"), ExitCodeForStatusCode(static_cast<int>(st.code())));
    }
    default:
      LOG(WARNING) << "unexpected " << wire::OpName(msg.op()) << " from the coordinator";
  }
}

void ParamServer::Heartbeat() {
  if (finished_) return;
  if (Clock::now() - coordinator_seen_ > heartbeat_timeout_) {
    // Nothing queued for it will be read: closing must not wait its linger for it.
    control_->AbandonQueued();
    return Finish(Status::Unavailable("the coordinator at " + options_.coordinator + " is unreachable"),
                  kExitPeerFailure);
  }
  OutMessage hb(Op::HEARTBEAT);
  auto b = hb.header().getBody().initHeartbeat();
  b.setStep(max_step_seen_);
  reporter_.MaybeAttach(b, Clock::now());
  // One that cannot go at once is a missed heartbeat, not one queued to arrive stale.
  control_->SendIfRoom(std::move(hb)).IgnoreError();
}

void ParamServer::OnData(Socket& sock, InMessage&& msg) {
  if (finished_) return;
  if (!wire::IsDataPlaneOp(msg.op())) {
    sock.Send(wire::MakeErrorReply(msg, Status::InvalidArgument("a server handles push, pull and pushPull, not " +
                                                                wire::OpName(msg.op()))))
        .IgnoreError();
    return;
  }
  if (!core_) {
    sock.Send(wire::MakeErrorReply(msg, Status::Unavailable("server has no shard map yet"))).IgnoreError();
    return;
  }
  static metrics::Latency& handling = metrics::Global().GetLatency("request_seconds");
  static metrics::Counter& requests = metrics::Global().GetCounter("requests_total");
  static metrics::Counter& bytes_in = metrics::Global().GetCounter("server_bytes_in_total");
  requests.Add(1);
  for (size_t i = 0; i < msg.num_payloads(); ++i) bytes_in.Add(msg.payload(i).size());
  // A same-host payload still being written (wire/shm_stream.h) is read as it arrives
  // only by a dense push's or push+pull's update (Serve); every other request waits for
  // it whole.
  auto await_payloads = [&] {
    Status st = msg.AwaitPayloads(wire::ShmStreamTimeout());
    if (!st.ok()) sock.Send(wire::MakeErrorReply(msg, st.WithContext("push"))).IgnoreError();
    return st.ok();
  };
  const bool dense_push = (msg.op() == Op::PUSH || msg.op() == Op::PUSH_PULL) && msg.num_payloads() == 1;
  if (msg.streamed() && !dense_push && !await_payloads()) return;
  auto decoded = DecodeDataRequest(msg, options_.num_servers);
  if (!decoded.ok()) {
    sock.Send(wire::MakeErrorReply(msg, decoded.status())).IgnoreError();
    return;
  }
  if (msg.streamed() && (decoded->req.kind != ParamKind::kDense || decoded->topk) && !await_payloads()) return;
  if (decoded->req.step > max_step_seen_) max_step_seen_ = decoded->req.step;
  bool served;
  {
    metrics::ScopedLatency t(handling);
    served = Serve(sock, msg, *decoded, false);
  }
  if (!served) {
    // Decoded once, here: RetryParked runs after every push and must not decode the
    // whole queue each time.
    parked_.push_back({std::move(msg), std::move(decoded).value()});
    return;
  }
  if (msg.op() != Op::PULL) {
    RetryParked();
    if (checkpoints_) checkpoints_->AfterPush(*core_);
  }
}

void ParamServer::RequestPreempt(int signal, bool urgent) {
  reactor_->Post([this, signal, urgent] {
    if (finished_) return;
    OutMessage out(Op::PREEMPT);
    auto p = out.header().getBody().initPreempt();
    p.setSignal(signal);
    p.setUrgent(urgent);
    control_->Send(std::move(out)).IgnoreError();
  });
}

bool ParamServer::Serve(Socket& sock, const InMessage& msg, DataRequest& decoded, bool already_pushed) {
  auto reply_error = [&](const Status& st) {
    sock.Send(wire::MakeErrorReply(msg, st)).IgnoreError();
    return true;
  };
  const ParamRequest& req = decoded.req;

  timeline::SetThreadName("server reactor");
  // The reply's payload. A dense push+pull's is written while its update is applied, in
  // the same pass (`mirrored`), when the update happens at once (not bsp); the pull half
  // then only checks. Sized from the values received, so no request can make it large.
  Buffer out;
  bool mirrored = false;
  if (msg.op() != Op::PULL && !already_pushed) {
    // A bsp push that completes a step contains the "optimizer" spans of its update.
    timeline::Span span("push", "server", "param", req.param_id, "step", req.step);
    std::vector<float> expanded;  // a top-k push as its dense gradient
    Status st = ExpandTopKPush(core_->map(), &decoded, &expanded);
    if (!st.ok()) return reply_error(st);
    std::span<float> mirror;
    // Same host, a peer that takes streamed replies: the reply goes before the update is
    // applied and its values are published block by block as they are written.
    uint64_t* reply_progress = nullptr;
    if (msg.op() == Op::PUSH_PULL && req.kind == ParamKind::kDense && !decoded.values.empty() &&
        req.end > req.begin && decoded.values.size() == req.end - req.begin) {
      out = sock.AllocatePayload(msg.routing_id(), decoded.values.size() * sizeof(float),
                                 decoded.want_digest == 0 ? &reply_progress : nullptr);
      mirror = {out.as<float>(), decoded.values.size()};
    }
    // Streamed (same host): each block of the update waits for its part of the gradient.
    const wire::ShmStream* stream = msg.payload_stream(0);
    const Duration stream_timeout = wire::ShmStreamTimeout();
    bool answered = false;
    const auto gate_fn = [&](uint64_t begin, uint64_t end) -> Status {
      if (answered) wire::ShmStreamPublish(reply_progress, begin * sizeof(float));
      return stream != nullptr ? stream->WaitFor(end * sizeof(float), stream_timeout) : Status::OK();
    };
    const auto answer_fn = [&] {
      auto ready = core_->PullReady(req);  // asp; ssp within its staleness
      int64_t applied = -1;
      if (!ready.ok() || !*ready || !core_->Pull(req, mirror, &applied, /*mirrored=*/true).ok()) return;
      // Attempted once: a failed send means the peer is gone, and the slot is spent.
      answered = true;
      SendPullReply(sock, msg, decoded, out, mirror.size(), applied, /*streamable=*/true).IgnoreError();
    };
    // As std::functions only where used (same host): each cost an allocation per request.
    std::optional<kernels::GradientGate> gate;
    if (stream != nullptr || reply_progress != nullptr) gate.emplace(gate_fn);
    std::optional<std::function<void()>> answer_first;
    if (reply_progress != nullptr) answer_first.emplace(answer_fn);
    // The reply is mirrored chunk by chunk; its whole size picks the copy (common/stream_copy.h).
    const ScopedPayloadBytes reply_bytes(mirror.size_bytes());
    st = core_->Push(req, decoded.values, mirror, &mirrored, gate ? &*gate : nullptr,
                     answer_first ? &*answer_first : nullptr);
    if (answered) {  // the requester learns the outcome from the progress word
      wire::ShmStreamPublish(reply_progress, st.ok() ? mirror.size() * sizeof(float) : wire::kShmStreamAbandoned);
      if (!st.ok()) {
        LOG_EVERY_T(WARNING, 1.0) << "a streamed push+pull failed after its reply: " << st.ToString();
      }
      return true;
    }
    if (!st.ok()) return reply_error(st);
    if (msg.op() == Op::PUSH) {
      sock.Send(wire::MakeReply(msg, Op::RESPONSE)).IgnoreError();
      return true;
    }
  }
  // pull, or the pull half of pushPull.
  auto ready = core_->PullReady(req);
  if (!ready.ok()) return reply_error(ready.status());
  // Not ready: the caller parks it; RetryParked serves it with already_pushed = true, so
  // the push half of a pushPull is applied exactly once.
  if (!*ready) return false;
  timeline::Span span("pull", "server", "param", req.param_id, "step", req.step);
  uint64_t n = req.kind == ParamKind::kSparse
                   ? req.keys.size() * core_->map().param(req.param_id)->numel()
                   : req.end - req.begin;
  // Built in place in the shared-memory arena of a same-host peer (no copy at send).
  if (!mirrored) out = sock.AllocatePayload(msg.routing_id(), n * sizeof(float));
  int64_t applied = -1;
  Status st = core_->Pull(req, {out.as<float>(), n}, &applied, mirrored);
  if (!st.ok()) return reply_error(st);
  st = SendPullReply(sock, msg, decoded, std::move(out), n, applied, /*streamable=*/false);
  if (!st.ok()) return reply_error(st);
  return true;
}

Status ParamServer::SendPullReply(Socket& sock, const InMessage& msg, const DataRequest& decoded, Buffer out,
                                  uint64_t n, int64_t applied, bool streamable) {
  const ParamRequest& req = decoded.req;
  OutMessage rep = wire::MakeReply(msg, Op::RESPONSE);
  auto r = rep.header().getBody().initResponse();
  r.setParamId(req.param_id);
  r.setAppliedStep(applied);
  // O(dense elements) for 1, O(tables) for 2: the rows keep their sum up to date.
  if (decoded.want_digest != 0) {
    r.setStoreDigest(decoded.want_digest == 1 ? core_->Digest() : core_->store().SparseDigest());
  }
  TESSERA_RETURN_IF_ERROR(rep.AddPayload(std::move(out), DType::kF32, n));
  rep.set_streamable(streamable);
  static metrics::Counter& bytes_out = metrics::Global().GetCounter("server_bytes_out_total");
  bytes_out.Add(n * sizeof(float));
  sock.Send(std::move(rep)).IgnoreError();  // a gone peer has nobody to tell
  return Status::OK();
}

void ParamServer::RetryParked() {
  // Parked requests keep arrival order; each pass serves every one that became ready.
  for (size_t i = 0; i < parked_.size();) {
    if (Serve(*data_, parked_[i].msg, parked_[i].decoded, /*already_pushed=*/true)) {
      parked_.erase(parked_.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void ParamServer::Finish(Status status, int exit_code) {
  if (finished_) return;
  finished_ = true;
  if (status.ok()) LOG(INFO) << "server shutting down: job finished";
  else LOG(ERROR) << "server stopping: " << status.ToString();
  for (uint32_t id = 0; core_ && id < core_->map().num_params(); ++id) {
    const TableStats t = core_->store().table_stats(id);
    if (t.evicted + t.expired + t.dropped == 0) continue;
    LOG(INFO) << "table '" << core_->map().param(id)->name << "': " << core_->store().num_rows(id)
              << " rows resident, " << t.created << " created, " << t.evicted << " evicted, " << t.expired
              << " expired, " << t.dropped << " row gradients not admitted";
  }
  // Says whether --server_threads=2 did anything: only batches of kSplitMinKeys keys split.
  if (core_ && core_->store().split_work()) {
    LOG(INFO) << "helper thread (--server_threads=2): " << core_->store().split_helper_ranges()
              << " ranges of sparse rows";
  }
  std::lock_guard<std::mutex> l(mu_);
  done_ = true;
  outcome_ = {std::move(status), exit_code};
  done_cv_.notify_all();
}

JobOutcome ParamServer::Wait(Duration timeout) {
  std::unique_lock<std::mutex> l(mu_);
  if (!done_cv_.wait_for(l, timeout, [this]() REQUIRES(mu_) { return done_; })) {
    return {Status::TimedOut("server still running"), kExitTimeout};
  }
  JobOutcome o = outcome_;
  l.unlock();
  reactor_->Stop();
  return o;
}

}  // namespace tessera::paramserver
