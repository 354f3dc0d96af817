#include "launch/job.h"

#include <gflags/gflags.h>
#include <glog/logging.h>
#include <sched.h>
#include <signal.h>

#include <cstdlib>
#include <optional>
#include <thread>

#include "collective/mpi_communicator.h"
#include "collective/sync_mode.h"
#include "common/exit_codes.h"
#include "common/logging.h"
#include "common/run_identity.h"
#include "coordinator/coordinator.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "launch/checkpoint_flags.h"
#include "launch/table_flags.h"
#include "launch/device_placement.h"
#include "launch/job_auth.h"
#include "launch/job_network.h"
#include "launch/job_shape.h"
#include "common/hostname.h"
#include "launch/metrics_flags.h"
#include "launch/signals.h"
#include "launch/timeline_flags.h"
#include "paramserver/server.h"
#include "wire/alloc.h"

DEFINE_int32(servers, 0, "Number of parameter servers (0: derived from the world size, at least 1)");
DEFINE_int32(workers, 0, "Number of workers (0: the rest of the world size)");
DEFINE_string(sync, "bsp", "How gradients are combined: bsp, ssp:K or asp (parameter servers), allreduce, or hybrid");
DEFINE_string(grad_reduce, "mean", "How servers combine workers' gradients: mean or sum");
DEFINE_uint64(chunk_bytes, 1 << 20, "Dense tensors are split into chunks of this many bytes across servers");
DEFINE_double(heartbeat_timeout_s, 10.0, "A peer silent this long is declared dead and the job stops");
DEFINE_double(heartbeat_interval_s, 0.5, "How often every process sends a heartbeat");
DEFINE_double(register_timeout_s, 120.0, "How long the job waits for every process to register");
DEFINE_double(request_timeout_s, 300.0, "Deadline of one push/pull request");
DEFINE_string(coordinator_host, "", "Coordinator host (default: published by rank 0 under mpirun, else from the launcher's environment, else 127.0.0.1)");
DEFINE_int32(coordinator_port, 0, "Coordinator port (default: any free port published by rank 0 under mpirun, else from the launcher's environment)");
DEFINE_string(bind_host, "", "Address servers and the coordinator bind to (default: 127.0.0.1 when the job stays on one host, else the address of the --interface; 0.0.0.0 listens on every interface and advertises the interface's address)");
DEFINE_string(interface, "", "Network interface for a job that spans hosts: a name prefix (eth), =exact name, ^excluded prefix, or an IPv4 network (10.1.0.0/16), comma-separated (default: $TESSERA_SOCKET_IFNAME, else the first interface that is up and not loopback or virtual, InfiniBand first; a server moves to the interface of its route to the coordinator)");
DEFINE_string(advertise_host, "", "Host or address peers are told to connect to (default: the address chosen for --bind_host); for NAT or a relay in front of this process");
DEFINE_int32(data_port, 0, "Server r binds its data socket to port data_port + r - 1 (0: any free port)");
DEFINE_int32(advertise_data_port, 0, "Server r tells workers to connect to port advertise_data_port + r - 1 instead of its bound port, for a relay or port forward in front of it (0: the bound port)");
DEFINE_string(device, "auto", "Where workers compute: cpu, cuda (one GPU per worker by local rank; exit 2 without one) or auto (cuda when a GPU is visible); servers stay on the CPU");
DEFINE_int32(kernel_threads, 1, "Threads one CPU kernel may use (1 leaves the cores to ZeroMQ and the other ranks)");
DEFINE_int32(server_threads, 0, "Threads each server runs a sparse pull or push of at least 1024 keys on: 1 (its event loop alone), 2 (a helper thread takes ranges of the rows, for a server with a core to spare: docs/benchmarks-sparse-threads.md) or 0 (auto: 2 when the job's servers and workers all run on this host and number at most the CPUs this process may use, else 1)");
DEFINE_int32(max_inflight, 1000, "Requests queued per connection before senders are pushed back");
DEFINE_uint64(server_outbox_bytes, uint64_t{1} << 30,
              "Reply bytes a server keeps queued for workers that do not read them; past it the largest "
              "backlog's replies are dropped (0: no bound)");
DEFINE_uint64(tcp_request_bytes, 1 << 20, "A worker cuts a dense push/pull to a server it reaches over TCP (no same-host shared memory) into requests of about this many bytes, at --chunk_bytes boundaries, so the server works on one while the next is on the wire (0: one request per server; a tensor of one chunk stays whole)");
DEFINE_bool(caller_leads, true, "A worker thread that sends a data request sends it itself (to a server on this host: copying the gradient into shared memory itself) and, while it waits for the reply, reads its server connections (and same-host local links) itself (leader/follower), instead of handing both to the worker's reactor thread, which then sleeps through those replies; off: a caller sends itself to a server it reaches over TCP alone only when the reactor thread is asleep, and the reactor thread reads every reply. On by default: faster over loopback TCP, on one host and with several caller threads, no slower between namespace hosts (docs/benchmarks-transport-lead.md, docs/benchmarks-shm.md)");
DEFINE_double(stall_warn_s, 60.0, "Name the worker(s) holding up a step after this many seconds without progress (0: never)");
DEFINE_string(auth, "auto", "Socket security: mac (every message authenticated with the job key, not encrypted), curve (CURVE: authenticated and encrypted, slower), none, or auto (mac when a key file is known; see docs/security.md)");
DEFINE_string(auth_key_file, "", "Job key file for --auth=mac and --auth=curve (default: $TESSERA_AUTH_KEY_FILE, set by tessera launch); rank 0 creates it when missing");
DEFINE_double(stall_timeout_s, 600.0, "End the job (exit code 4) when no step completes for this long (0: never)");

namespace tessera::launch {

namespace {

Duration Seconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }

std::string RoleTag(int rank, int servers) {
  if (rank == 0) return "coordinator";
  if (rank <= servers) return "server " + std::to_string(rank - 1);
  return "worker " + std::to_string(rank - 1 - servers);
}

int Fail(const Status& st, int code) {
  LOG(ERROR) << st.ToString();
  return code;
}

// Owns this process's MPI communicator (all-reduce path). A process that fails leaves
// without MPI_Finalize: Finalize waits for every peer, which may be stuck in a collective
// waiting for us; mpirun then sees a process exit without finalising and ends the job.
class MpiGuard {
 public:
  ~MpiGuard() {
    if (mpi_ && code_ != 0) {
      LOG(WARNING) << "exiting with code " << code_ << " without MPI_Finalize";
      (void)mpi_.release();
    }
  }
  int Exit(int code) {
    code_ = code;
    return code;
  }
  std::unique_ptr<collective::MpiCommunicator> mpi_;

 private:
  int code_ = 1;
};

// Everything a role needs once the process knows where it stands.
struct JobSetup {
  LaunchInfo li;
  JobShape shape;
  SyncPolicy sync;
  GradReduce reduce = GradReduce::kMean;
  NetworkPlan net;
  std::shared_ptr<wire::Context> ctx;
  JobAuth auth;
  bool collective = false;  // --sync=allreduce|hybrid
};

Status CheckJobFlags() {
  if (FLAGS_stall_warn_s < 0 || FLAGS_stall_timeout_s < 0) {
    return Status::InvalidArgument("--stall_warn_s and --stall_timeout_s must be >= 0");
  }
  if (FLAGS_heartbeat_timeout_s <= 0 || FLAGS_heartbeat_interval_s <= 0 ||
      FLAGS_heartbeat_interval_s >= FLAGS_heartbeat_timeout_s) {
    return Status::InvalidArgument("need 0 < --heartbeat_interval_s < --heartbeat_timeout_s");
  }
  TESSERA_RETURN_IF_ERROR(TableLimitsFromFlags().status());
  TESSERA_ASSIGN_OR_RETURN(const DeviceRequest device, ParseDeviceFlag(FLAGS_device));
  // The same binary runs every rank: a CPU-only build refuses --device=cuda everywhere at
  // once. Whether a GPU is present is each worker's own question (RunWorker).
  if (device == DeviceRequest::kCuda && !kernels::BuiltWithCuda()) {
    return PlaceWorker(device, false, 0, LaunchInfo{}).status();
  }
  return Status::OK();
}

// Where this process listens and how it finds the coordinator (launch/job_network.h),
// logged with how each was decided.
NetworkFlags NetworkFlagsOfThisProcess() {
  NetworkFlags nf{FLAGS_coordinator_host, FLAGS_coordinator_port, {FLAGS_bind_host, FLAGS_interface, FLAGS_advertise_host}};
  if (nf.addresses.interface_spec.empty()) {
    if (const char* e = std::getenv("TESSERA_SOCKET_IFNAME")) nf.addresses.interface_spec = e;
  }
  return nf;
}

Result<NetworkPlan> PlanThisProcessNetwork(const LaunchInfo& li) {
  TESSERA_ASSIGN_OR_RETURN(auto ifs, ListInterfaces());
  TESSERA_ASSIGN_OR_RETURN(NetworkPlan net, PlanNetwork(li, NetworkFlagsOfThisProcess(), ifs));
  if (li.rank == 0 && !net.launcher_rendezvous() && net.spans_hosts && FLAGS_bind_host.empty() &&
      net.coordinator_bind == "0.0.0.0") {
    LOG(WARNING) << "the coordinator's host in " << net.coordinator_endpoint << " is none of this host's addresses ("
                 << DescribeInterfaces(ifs) << "), yet this is rank 0: the other ranks connect there, which reaches "
                 << "this process only through NAT or a proxy; if that is not meant, name this host (" << Hostname()
                 << ") in --coordinator_host, MASTER_ADDR or TESSERA_COORDINATOR_HOST";
  }
  // Under the launcher's rendezvous the environment's coordinator host and port are not used.
  LOG(INFO) << "launched by " << li.source << ": rank " << li.rank << " of " << li.world_size << ", local rank "
            << li.local_rank << " ("
            << (net.launcher_rendezvous() ? li.detail.substr(0, li.detail.find(", coordinator host")) : li.detail) << ")";
  LOG(INFO) << "network: " << (net.spans_hosts ? "the job spans hosts (" + net.spans_from + ")" : std::string("one host"))
            << "; listening on " << (li.rank == 0 ? net.coordinator_bind : net.addresses.bind_host) << ", advertised as "
            << net.addresses.advertise_host << " (" << net.addresses.reason << "); coordinator "
            << (net.launcher_rendezvous() ? std::string("endpoint published by rank 0 through the launcher")
                                          : net.coordinator_endpoint);
  return net;
}

Status SetUpAuth(JobSetup& job) {
  TESSERA_ASSIGN_OR_RETURN(job.auth, ResolveJobAuth(FLAGS_auth, FLAGS_auth_key_file, CurrentEnv(), job.li.rank,
                                                    job.net.spans_hosts || !IsLoopbackHost(job.net.addresses.bind_host),
                                                    Seconds(FLAGS_register_timeout_s)));
  switch (job.auth.mode) {
    case AuthMode::kNone:
      return Status::OK();
    case AuthMode::kCurve:
      TESSERA_RETURN_IF_ERROR(job.ctx->EnableCurve(job.auth.keys).WithContext("enabling CURVE"));
      LOG(INFO) << "CURVE authentication and encryption on (key file " << job.auth.key_file << ")";
      return Status::OK();
    case AuthMode::kMac:
      TESSERA_RETURN_IF_ERROR(job.ctx->EnableMac(job.auth.keys).WithContext("enabling --auth=mac"));
      LOG(INFO) << "auth=mac: every message authenticated with the job key, not encrypted (key file "
                << job.auth.key_file << ")";
      return Status::OK();
  }
  return Status::OK();
}

// MPI, when the all-reduce path or the rendezvous needs it: every process of an MPI
// world joins (MPI_Init and MPI_Finalize must match everywhere); the workers get the
// workers-only communicator.
Status StartMpiIfNeeded(const JobSetup& job, MpiGuard& guard) {
  const LaunchInfo& li = job.li;
  const bool is_worker = li.rank > job.shape.servers;
  const int workers = job.shape.workers;
  if ((job.collective && li.mpi_world_size > 0 && li.source != "mpich") || job.net.mpi_rendezvous) {
    collective::MpiOptions mo;
    mo.member = is_worker && job.collective;
    mo.op_timeout = Seconds(FLAGS_request_timeout_s);
    mo.init_timeout = Seconds(FLAGS_register_timeout_s);
    auto m = collective::MpiCommunicator::Start(mo);
    if (!m.ok()) return m.status().WithContext("--sync=" + FLAGS_sync);
    guard.mpi_ = std::move(m).value();
    if (mo.member && guard.mpi_->size() != workers) {
      return Status::InvalidArgument("--sync=" + FLAGS_sync + ": the MPI world holds " + std::to_string(guard.mpi_->size()) +
                                     " workers but the job has " + std::to_string(workers));
    }
  } else if (job.collective && is_worker && workers > 1) {
    return Status::InvalidArgument("--sync=" + FLAGS_sync + " with " + std::to_string(workers) +
                                   " workers needs the workers in one MPI world: start the job with "
                                   "`tessera launch` (it runs the workers under mpirun) or with Open MPI's mpirun" +
                                   std::string(li.source == "mpich" ? " (this tessera links Open MPI and cannot "
                                                                      "join MPICH's world; parameter-server modes work under MPICH)"
                                                                    : ""));
  }
  return Status::OK();
}

Result<std::unique_ptr<Coordinator>> StartCoordinator(const JobSetup& job) {
  CoordinatorOptions o;
  o.bind = "tcp://" + job.net.coordinator_bind + ":" +
           (job.net.coordinator_port > 0 ? std::to_string(job.net.coordinator_port) : "*");
  o.listen_fd = job.li.coordinator_listen_fd;  // tessera launch bound the port for us
  o.job_id = job.li.job_id;
  o.num_servers = job.shape.servers;
  o.num_workers = job.shape.workers;
  o.heartbeat_timeout = Seconds(FLAGS_heartbeat_timeout_s);
  o.heartbeat_interval = Seconds(FLAGS_heartbeat_interval_s);
  o.register_timeout = Seconds(FLAGS_register_timeout_s);
  o.shard.chunk_bytes = FLAGS_chunk_bytes;
  o.shard.sync = job.sync;
  o.shard.grad_reduce = job.reduce;
  o.stall.warn = Seconds(FLAGS_stall_warn_s);
  o.stall.timeout = Seconds(FLAGS_stall_timeout_s);
  o.stall.silent_after = Seconds(4 * FLAGS_heartbeat_interval_s);
  o.checkpoint = CheckpointOptionsFromFlags();
  o.checkpoint.sync = FLAGS_sync;
  o.checkpoint.dense_on_workers = job.collective;
  o.checkpoint.grad_reduce = FLAGS_grad_reduce;
  o.checkpoint.chunk_bytes = FLAGS_chunk_bytes;
  TESSERA_ASSIGN_OR_RETURN(o.metrics, MetricsOptionsFromFlags());
  auto c = Coordinator::Start(o, job.ctx);
  if (!c.ok()) return c.status().WithContext("starting the coordinator on " + o.bind);
  return c;
}

// The launcher's rendezvous (MPI or PMI): every rank states its job, rank 0 its bound
// endpoint; returns that endpoint once all agree.
Result<std::string> RendezvousThroughLauncher(JobSetup& job, const Coordinator* coordinator, MpiGuard& guard) {
  const LaunchInfo& li = job.li;
  JobRecord mine{li.rank, Hostname(), li.job_id, li.world_size, job.shape.servers, job.shape.workers, FLAGS_sync,
                 job.auth.keyed() ? std::string(AuthModeName(job.auth.mode)) + ":" + KeyFingerprint(job.auth.keys.public_z85) : "", ""};
  if (coordinator != nullptr) {
    const auto& candidates = job.net.coordinator_candidates;
    for (const auto& a : candidates.empty() ? std::vector<std::string>{job.net.addresses.advertise_host} : candidates) {
      mine.coordinator += (mine.coordinator.empty() ? "" : ",") + AdvertisedEndpoint(coordinator->endpoint(), a);
    }
  }
  TESSERA_ASSIGN_OR_RETURN(std::string published,
                           ExchangeJobRecords(job.net.mpi_rendezvous ? guard.mpi_.get() : nullptr, li, mine,
                                              Seconds(FLAGS_register_timeout_s)));
  std::string tries;
  const std::string endpoint = FirstReachableEndpoint(published, std::chrono::seconds(2), &tries);
  LOG(INFO) << "coordinator at " << endpoint << " (published by rank 0 through "
            << (job.net.mpi_rendezvous ? "MPI" : "PMI") << "; all " << li.world_size << " ranks agree on the job"
            << (tries.empty() ? "" : "; of its addresses " + published + ": " + tries) << ")";
  // A server binds only now, so it can listen where its route to rank 0 leaves, not on
  // a first interface the other hosts may not reach.
  auto ifs = ListInterfaces();
  if (li.rank != 0 && li.rank <= job.shape.servers && job.net.spans_hosts && ifs.ok() &&
      FollowRouteToCoordinator(*ifs, NetworkFlagsOfThisProcess(), EndpointHost(endpoint), &job.net)) {
    LOG(INFO) << "network: listening on " << job.net.addresses.bind_host << ", advertised as "
              << job.net.addresses.advertise_host << " (" << job.net.addresses.reason << ")";
  }
  // A parameter-server job needs MPI for nothing else: finalise it now (every rank
  // does, collectively), so a failure later is handled as in any other launch.
  if (job.net.mpi_rendezvous && !job.collective) guard.mpi_.reset();
  return endpoint;
}

// Signals (docs/checkpoints.md, "Preemption"): SIGTERM/SIGUSR1 to any process asks the
// coordinator to checkpoint and end the job with kExitPreempted; a second one ends it
// at once. SIGINT stops the job (coordinator) or is ignored (the others).
template <typename Peer>
std::function<void(int, int)> PeerSignalHandler(const char* role, Peer* peer) {
  return [role, peer](int sig, int n) {
    if (sig == SIGINT) return;
    LOG(WARNING) << role << " got " << strsignal(sig)
                 << (n > 1 ? " again: stopping at once" : ": asking the coordinator to checkpoint and stop");
    peer->RequestPreempt(sig, n > 1);
    if (n > 1) {
      // The coordinator ends the job for everyone; if it cannot, leave anyway.
      std::this_thread::sleep_for(std::chrono::seconds(2));
      std::_Exit(kExitPreempted);
    }
  };
}

int RunCoordinator(Coordinator* coord, MpiGuard& guard) {
  JobOutcome out;
  {
    SignalWatcher watcher([coord](int sig, int n) {
      if (sig == SIGINT) return coord->Abort(std::string("stopped by signal ") + strsignal(sig), 128 + sig);
      LOG(WARNING) << "coordinator got " << strsignal(sig) << (n > 1 ? " again: stopping at once" : "");
      coord->Preempt(sig, n > 1);
    });
    out = coord->Wait();
  }
  return guard.Exit(out.exit_code);
}

int RunServer(const JobSetup& job, const std::string& coordinator, MpiGuard& guard) {
  const LaunchInfo& li = job.li;
  const int servers = job.shape.servers;
  paramserver::ServerOptions o;
  o.coordinator = coordinator;
  o.job_id = li.job_id;
  o.rank = li.rank;
  o.num_servers = servers;
  o.num_workers = job.shape.workers;
  for (int p : {FLAGS_data_port, FLAGS_advertise_data_port}) {
    if (p < 0 || (p > 0 && p + servers - 1 > 65535)) {
      return Fail(Status::InvalidArgument("--data_port/--advertise_data_port " + std::to_string(p) + " with " +
                                          std::to_string(servers) + " servers: ports must lie in 1..65535"),
                  kExitConfig);
    }
  }
  o.bind = "tcp://" + job.net.addresses.bind_host + ":" +
           (FLAGS_data_port > 0 ? std::to_string(FLAGS_data_port + li.rank - 1) : std::string("*"));
  o.advertise_host = job.net.addresses.advertise_host;
  if (FLAGS_advertise_data_port > 0) o.advertise_port = FLAGS_advertise_data_port + li.rank - 1;
  o.register_timeout = Seconds(FLAGS_register_timeout_s);
  o.max_inflight = FLAGS_max_inflight;
  o.outbox_bytes = FLAGS_server_outbox_bytes;
  cpu_set_t cpus;
  const int cores = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
  auto threads = ResolveServerThreads(FLAGS_server_threads, job.shape, li.spans_hosts, cores);
  if (!threads.ok()) return Fail(threads.status(), kExitConfig);
  o.threads = *threads;
  if (FLAGS_server_threads == 0) {
    LOG(INFO) << "--server_threads=0 (auto): " << o.threads << " (" << servers + job.shape.workers << " servers and workers"
              << (li.spans_hosts ? " across hosts" : " on this host") << ", " << cores << " CPUs)";
  }
  auto method = CheckpointWriteMethodFromFlags();
  if (!method.ok()) return Fail(method.status(), kExitConfig);
  o.checkpoint_write = *method;
  o.dense_on_workers = job.collective;
  auto limits = TableLimitsFromFlags();
  if (!limits.ok()) return Fail(limits.status(), kExitConfig);
  o.table_limits = std::move(limits).value();
  auto s = paramserver::ParamServer::Start(o, job.ctx);
  if (!s.ok()) return Fail(s.status().WithContext("starting the server"), kExitConfig);
  SignalWatcher watcher(PeerSignalHandler("server", s->get()));
  const JobOutcome out = (*s)->Wait();
  if (out.status.code() == StatusCode::kTimedOut && out.status.message().rfind("no shard map from the coordinator", 0) == 0) {
    LOG(ERROR) << "server: no shard map from the coordinator: " << DiagnoseCoordinatorReach(coordinator, std::chrono::seconds(2));
  }
  return guard.Exit(out.exit_code);
}

// Joins the job as a worker: registers and starts the signal watcher. Fills the
// state's client, watcher and context; returns 0, or the exit code of a failed join.
int JoinAsWorker(JoinedWorker::State& s, const std::string& coordinator);

}  // namespace

// Everything a joined worker holds, in construction order (destroyed in reverse: the
// watcher and the client before MPI_Finalize, the ZeroMQ context and the timeline).
struct JoinedWorker::State {
  TimelineRecording timeline;  // --timeline: stops (and writes the file) when destroyed
  JobSetup job;
  MpiGuard guard;  // destroyed (MPI_Finalize) after the role is done
  std::unique_ptr<worker::Client> client;
  std::optional<SignalWatcher> watcher;
  WorkerContext wc;
  bool finished = false;
  int exit_code = 0;
};

namespace {

int JoinAsWorker(JoinedWorker::State& s, const std::string& coordinator) {
  const JobSetup& job = s.job;
  MpiGuard& guard = s.guard;
  const LaunchInfo& li = job.li;
  worker::ClientOptions o;
  o.coordinator = coordinator;
  o.job_id = li.job_id;
  o.rank = li.rank;
  o.num_servers = job.shape.servers;
  o.num_workers = job.shape.workers;
  o.request_timeout = Seconds(FLAGS_request_timeout_s);
  o.register_timeout = Seconds(FLAGS_register_timeout_s);
  o.max_inflight = FLAGS_max_inflight;
  o.tcp_request_bytes = FLAGS_tcp_request_bytes;
  o.caller_leads = FLAGS_caller_leads;
  int stop_code = 0;
  auto client = worker::Client::Connect(o, job.ctx, &stop_code);
  if (!client.ok()) {
    // A job stopped while we were joining ends with the coordinator's code, like everyone's.
    int code = stop_code != 0 ? stop_code : ExitCodeForStatusCode(static_cast<int>(client.status().code()));
    Status st = client.status();
    if (stop_code == 0 && st.code() == StatusCode::kTimedOut) {
      st = Status(st.code(), st.message() + "; " + DiagnoseCoordinatorReach(coordinator, std::chrono::seconds(2)));
    }
    return guard.Exit(Fail(st.WithContext("joining the job"), code));
  }
  s.client = std::move(client).value();
  // --device: the local rank picks this worker's GPU, so the workers of one node spread
  // over its devices; servers and the coordinator never get here and stay on the CPU.
  auto placement = PlaceWorker(*ParseDeviceFlag(FLAGS_device), kernels::BuiltWithCuda(), kernels::CudaDeviceCount(), li);
  if (!placement.ok()) {
    // Through the coordinator, so the whole job ends with kExitConfig and says why.
    s.client->Finish(kExitConfig, placement.status().message()).IgnoreError();
    return guard.Exit(Fail(placement.status().WithContext("placing worker rank " + std::to_string(li.rank)), kExitConfig));
  }
  if (placement->device == Device::kCUDA) {
    Status st = kernels::UseCudaDevice(placement->cuda_device);
    if (!st.ok()) {
      s.client->Finish(kExitConfig, st.message()).IgnoreError();
      return guard.Exit(Fail(st.WithContext("choosing the GPU of local rank " + std::to_string(li.local_rank)), kExitConfig));
    }
  }
  LOG(INFO) << placement->reason;
  s.wc = WorkerContext{s.client.get(), li.rank - 1 - job.shape.servers, job.shape.workers, job.shape.servers, li,
                       guard.mpi_.get(), placement->device};
  // Workers of an all-reduce job share one MPI world: mpirun answers a dead rank by
  // sending SIGTERM to the others, which is a failure, not a preemption (and those modes
  // take no checkpoints), so they keep the default action and die with the world.
  if (!job.collective) s.watcher.emplace(PeerSignalHandler("worker", s.client.get()));
  return kExitOk;
}

}  // namespace

std::string SyncFlag() { return FLAGS_sync; }

namespace {

// The body of JoinJobProcess: sets up the job in `s`, runs rank 0's and the servers'
// roles to their end, joins a worker. Returns the exit code; *joined is set when this
// rank is a worker that joined.
int SetUpAndJoin(JoinedWorker::State& s, bool* joined) {
  JobSetup& job = s.job;
  MpiGuard& guard = s.guard;
  // From here on a signal is queued for the SignalWatcher started below, never acted on
  // in a handler (launch/signals.h).
  InstallJobSignalHandlers();
  wire::TuneAllocatorForLargeMessages();
  kernels::SetCpuThreads(FLAGS_kernel_threads);
  auto li = DetectLaunchEnv(CurrentEnv());
  if (!li.ok()) return Fail(li.status().WithContext("reading the launcher environment"), kExitConfig);
  job.li = *li;
  auto shape = ResolveJobShape(job.li.world_size, FLAGS_servers, FLAGS_workers);
  if (!shape.ok()) return Fail(shape.status(), kExitConfig);
  job.shape = *shape;
  SetRunIdentity(RunIdentityOf(job.li));
  const std::string run = CurrentRunIdentity().LogSuffix();
  SetLogTag(RoleTag(job.li.rank, job.shape.servers) + (run.empty() ? "" : " | " + run));
  if (Status st = s.timeline.Start(job.li.rank, job.shape.servers); !st.ok()) return Fail(st, kExitConfig);

  // allreduce/hybrid: the servers run bsp for what still goes through them.
  auto sync = ParseSyncPolicy(collective::ServerSyncText(FLAGS_sync));
  if (!sync.ok()) return Fail(sync.status(), kExitConfig);
  job.sync = *sync;
  auto reduce = ParseGradReduce(FLAGS_grad_reduce);
  if (!reduce.ok()) return Fail(reduce.status(), kExitConfig);
  job.reduce = *reduce;
  job.collective = collective::IsCollectiveSync(FLAGS_sync);
  if (Status st = CheckJobFlags(); !st.ok()) return Fail(st, kExitConfig);
  auto net = PlanThisProcessNetwork(job.li);
  if (!net.ok()) return Fail(net.status(), kExitConfig);
  job.net = *net;
  auto ctx = wire::Context::Create();
  if (!ctx.ok()) return Fail(ctx.status(), kExitFailure);
  job.ctx = *ctx;
  if (Status st = SetUpAuth(job); !st.ok()) return Fail(st, kExitConfig);
  if (!job.auth.keyed() && !job.net.coordinator_candidates.empty()) {
    // Without a job key, anyone who reaches the port can join: rank 0 listens on the
    // default choice alone, not on every interface (a public one among them).
    LOG(WARNING) << "network: no job key (--auth=none), so rank 0 listens only on "
                 << job.net.addresses.bind_host << ", not on every candidate interface; if other hosts cannot reach "
                 << "it, name the network they share: --interface=NETWORK/LEN";
    job.net.coordinator_candidates.clear();
    job.net.coordinator_bind = job.net.addresses.bind_host;
  }

  if (Status st = StartMpiIfNeeded(job, guard); !st.ok()) return Fail(st, kExitConfig);
  // Rank 0 binds before the rendezvous, so the endpoint it publishes is the real one.
  std::unique_ptr<Coordinator> coordinator;
  if (job.li.rank == 0) {
    auto c = StartCoordinator(job);
    if (!c.ok()) return Fail(c.status(), kExitConfig);
    coordinator = std::move(c).value();
  }
  std::string endpoint = job.net.coordinator_endpoint;
  if (job.net.launcher_rendezvous()) {
    auto ep = RendezvousThroughLauncher(job, coordinator.get(), guard);
    if (!ep.ok()) return guard.Exit(Fail(ep.status(), kExitConfig));
    endpoint = *ep;
  }
  if (job.li.rank == 0) return RunCoordinator(coordinator.get(), guard);
  if (job.li.rank <= job.shape.servers) return RunServer(job, endpoint, guard);
  const int code = JoinAsWorker(s, endpoint);
  *joined = code == kExitOk;
  return code;
}

}  // namespace

JoinedWorker::JoinedWorker(std::unique_ptr<State> state) : state_(std::move(state)) {}

JoinedWorker::~JoinedWorker() {
  if (!state_->finished) Finish(Status::Aborted("the worker went away without finishing"));
}

WorkerContext& JoinedWorker::context() { return state_->wc; }

int JoinedWorker::Finish(const Status& st) {
  State& s = *state_;
  if (s.finished) return s.exit_code;
  s.finished = true;
  if (st.ok()) {
    s.client->Finish(kExitOk, "done").IgnoreError();
    return s.exit_code = s.guard.Exit(kExitOk);
  }
  // When the job is already stopping (Shutdown received), its code wins.
  int code = s.client->requested_exit_code();
  if (code == 0) code = ExitCodeForStatusCode(static_cast<int>(st.code()));
  LOG(ERROR) << "worker failed: " << st.ToString();
  s.client->Finish(code, st.ToString()).IgnoreError();
  return s.exit_code = s.guard.Exit(code);
}

JoinOutcome JoinJobProcess() {
  auto state = std::make_unique<JoinedWorker::State>();
  bool joined = false;
  JoinOutcome out;
  out.exit_code = SetUpAndJoin(*state, &joined);
  if (joined) out.worker = std::make_unique<JoinedWorker>(std::move(state));
  return out;
}

int RunJobProcess(const WorkerMain& worker_main) {
  JoinOutcome joined = JoinJobProcess();
  if (!joined.worker) return joined.exit_code;
  return joined.worker->Finish(worker_main(joined.worker->context()));
}

}  // namespace tessera::launch
