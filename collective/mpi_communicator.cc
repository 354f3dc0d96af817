#include "collective/mpi_communicator.h"

#include <glog/logging.h>
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "collective/reduce16.h"
#include "common/timeline.h"

namespace tessera::collective {

namespace {

enum class OpKind : uint8_t { kAllReduce, kBroadcast, kAllGather, kBarrier, kRun };

struct Op {
  OpKind kind = OpKind::kBarrier;
  TensorView t;
  TensorView out;
  ReduceOp reduce = ReduceOp::kSum;
  WireFormat wire = WireFormat::kNative;
  int root = 0;
  std::function<Status(void*)> fn;
  bool world = false;  // kRun over MPI_COMM_WORLD (members or not) instead of the members' communicator
  CollHandle handle;
  std::string what;  // for error messages: "all-reduce of 4096 bytes"
};

std::string MpiError(int rc) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(buf, static_cast<size_t>(len));
}

Status Check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return Status::OK();
  return Status::Internal(std::string(call) + " failed: " + MpiError(rc));
}

std::string Describe(const char* kind, size_t bytes) {
  return std::string(kind) + " of " + std::to_string(bytes) + " bytes";
}

// MPI counts are ints: large buffers go in pieces of this many elements.
constexpr int64_t kMaxCount = int64_t{1} << 28;
// The 16-bit path moves segments of this many elements at a time, bounding its scratch.
constexpr int64_t kSegment16 = int64_t{1} << 24;

}  // namespace

struct MpiCommunicator::Shared {
  MpiOptions options;

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Op> queue;             // guarded by mu
  bool stopping = false;            // guarded by mu: no more operations; drain and exit
  bool watchdog_stop = false;       // guarded by mu
  Status broken;                    // guarded by mu: first fatal error
  bool running = false;             // guarded by mu: an operation is inside MPI
  Clock::time_point running_since;  // guarded by mu
  CollHandle running_handle;        // guarded by mu
  std::string running_what;         // guarded by mu
  bool init_done = false;           // guarded by mu
  Status init_status;               // guarded by mu
  bool thread_done = false;         // guarded by mu

  // Written by the communication thread before init_done, read-only afterwards.
  int rank = -1, size = 0, world_rank = 0, world_size = 0;
  bool owns_mpi = false;

  // Communication thread only.
  MPI_Comm comm = MPI_COMM_NULL;
  std::vector<uint16_t> send16, recv16, result16;
  std::vector<float> acc;

  std::thread comm_thread;
  std::thread watchdog;

  Status InitMpi();
  Status Execute(Op& op);
  Status AllReduceF32(float* data, int64_t n, ReduceOp reduce);
  Status AllReduce16(void* data, DType tensor_dtype, DType wire_dtype, int64_t n, ReduceOp reduce);
  void CommMain();
  void WatchdogMain();
};

Status MpiCommunicator::Shared::InitMpi() {
  int inited = 0;
  TESSERA_RETURN_IF_ERROR(Check(MPI_Initialized(&inited), "MPI_Initialized"));
  int provided = 0;
  if (!inited) {
    // FUNNELED: this thread makes every MPI call of the process (see the header).
    TESSERA_RETURN_IF_ERROR(Check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread"));
    owns_mpi = true;
    if (provided < MPI_THREAD_FUNNELED) {
      return Status::FailedPrecondition("MPI_Init_thread gave thread level " + std::to_string(provided) +
                                        ", below MPI_THREAD_FUNNELED");
    }
  } else {
    TESSERA_RETURN_IF_ERROR(Check(MPI_Query_thread(&provided), "MPI_Query_thread"));
    if (provided != MPI_THREAD_MULTIPLE) {
      return Status::FailedPrecondition(
          "MPI was initialised by another thread with a thread level below MPI_THREAD_MULTIPLE; "
          "the collective layer must make its calls from its own thread");
    }
  }
  TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank), "MPI_Comm_rank"));
  TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_size(MPI_COMM_WORLD, &world_size), "MPI_Comm_size"));
  TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_split(MPI_COMM_WORLD, options.member ? 0 : MPI_UNDEFINED, world_rank, &comm),
                                "MPI_Comm_split"));
  if (options.member) {
    TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler"));
    TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank"));
    TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_size(comm, &size), "MPI_Comm_size"));
  }
  return Status::OK();
}

Status MpiCommunicator::Shared::AllReduceF32(float* data, int64_t n, ReduceOp reduce) {
  for (int64_t off = 0; off < n; off += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - off));
    TESSERA_RETURN_IF_ERROR(
        Check(MPI_Allreduce(MPI_IN_PLACE, data + off, count, MPI_FLOAT, MPI_SUM, comm), "MPI_Allreduce"));
  }
  if (reduce == ReduceOp::kMean && size > 1) {
    const float inv = 1.0f / static_cast<float>(size);
    for (int64_t i = 0; i < n; ++i) data[i] *= inv;
  }
  return Status::OK();
}

// 16 bits on the wire, f32 sums: every rank sends block j of its values to rank j
// (all-to-all), rank j sums the `size` blocks it receives in f32, in rank order, rounds
// the (scaled) sum once, and an all-gather hands every rank every block. Bytes per rank:
// 2 (n-1)/n of the 16-bit tensor, like a ring all-reduce, with no intermediate rounding.
Status MpiCommunicator::Shared::AllReduce16(void* data, DType tensor_dtype, DType wire_dtype, int64_t n,
                                            ReduceOp reduce) {
  const float scale = reduce == ReduceOp::kMean ? 1.0f / static_cast<float>(size) : 1.0f;
  for (int64_t seg = 0; seg < n; seg += kSegment16) {
    const int64_t len = std::min(kSegment16, n - seg);
    const int64_t block = (len + size - 1) / size;
    const size_t padded = static_cast<size_t>(block * size);
    send16.assign(padded, 0);
    recv16.resize(padded);
    result16.resize(static_cast<size_t>(block));
    acc.resize(static_cast<size_t>(block));
    if (tensor_dtype == DType::kF32) {
      Narrow16(static_cast<const float*>(data) + seg, 1.0f, wire_dtype, send16.data(), static_cast<size_t>(len));
    } else {
      std::memcpy(send16.data(), static_cast<const uint16_t*>(data) + seg, static_cast<size_t>(len) * 2);
    }
    TESSERA_RETURN_IF_ERROR(Check(MPI_Alltoall(send16.data(), static_cast<int>(block), MPI_UINT16_T, recv16.data(),
                                               static_cast<int>(block), MPI_UINT16_T, comm),
                                  "MPI_Alltoall"));
    Widen16(recv16.data(), wire_dtype, acc.data(), static_cast<size_t>(block));
    for (int r = 1; r < size; ++r) {
      Accumulate16(recv16.data() + static_cast<size_t>(r * block), wire_dtype, acc.data(), static_cast<size_t>(block));
    }
    Narrow16(acc.data(), scale, wire_dtype, result16.data(), static_cast<size_t>(block));
    TESSERA_RETURN_IF_ERROR(Check(MPI_Allgather(result16.data(), static_cast<int>(block), MPI_UINT16_T, recv16.data(),
                                                static_cast<int>(block), MPI_UINT16_T, comm),
                                  "MPI_Allgather"));
    if (tensor_dtype == DType::kF32) {
      Widen16(recv16.data(), wire_dtype, static_cast<float*>(data) + seg, static_cast<size_t>(len));
    } else {
      std::memcpy(static_cast<uint16_t*>(data) + seg, recv16.data(), static_cast<size_t>(len) * 2);
    }
  }
  return Status::OK();
}

Status MpiCommunicator::Shared::Execute(Op& op) {
  switch (op.kind) {
    case OpKind::kAllReduce: {
      const int64_t n = op.t.numel();
      if (n == 0) return Status::OK();
      // One span per bucket (or unfused tensor) of a step (collective/bucketer.h).
      timeline::Span span("allreduce", "collective", "elements", n, "bytes", static_cast<int64_t>(op.t.nbytes()));
      if (op.t.dtype == DType::kF32 && op.wire == WireFormat::kNative) {
        return AllReduceF32(op.t.as<float>(), n, op.reduce);
      }
      DType wire = op.t.dtype;
      if (op.wire == WireFormat::kF16) wire = DType::kF16;
      if (op.wire == WireFormat::kBF16) wire = DType::kBF16;
      return AllReduce16(op.t.data, op.t.dtype, wire, n, op.reduce);
    }
    case OpKind::kBroadcast: {
      auto* p = static_cast<char*>(op.t.data);
      const int64_t bytes = static_cast<int64_t>(op.t.nbytes());
      for (int64_t off = 0; off < bytes; off += kMaxCount) {
        const int count = static_cast<int>(std::min(kMaxCount, bytes - off));
        TESSERA_RETURN_IF_ERROR(Check(MPI_Bcast(p + off, count, MPI_BYTE, op.root, comm), "MPI_Bcast"));
      }
      return Status::OK();
    }
    case OpKind::kAllGather:
      return Check(MPI_Allgather(op.t.data, static_cast<int>(op.t.nbytes()), MPI_BYTE, op.out.data,
                                 static_cast<int>(op.t.nbytes()), MPI_BYTE, comm),
                   "MPI_Allgather");
    case OpKind::kBarrier:
      return Check(MPI_Barrier(comm), "MPI_Barrier");
    case OpKind::kRun: {
      if (!op.world) return op.fn(&comm);
      MPI_Comm world = MPI_COMM_WORLD;
      return op.fn(&world);
    }
  }
  return Status::Internal("unknown collective operation");
}

void MpiCommunicator::Shared::CommMain() {
  timeline::SetThreadName("mpi comm");
  Status st = InitMpi();
  {
    std::lock_guard<std::mutex> lock(mu);
    init_done = true;
    init_status = st;
  }
  cv.notify_all();
  for (;;) {
    Op op;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [this] { return stopping || !queue.empty(); });
      if (queue.empty()) break;
      op = std::move(queue.front());
      queue.pop_front();
      if (!broken.ok()) {
        lock.unlock();
        op.handle.Complete(broken);
        continue;
      }
      running = true;
      running_since = Clock::now();
      running_handle = op.handle;
      running_what = op.what;
    }
    Status r = Execute(op);
    {
      std::lock_guard<std::mutex> lock(mu);
      running = false;
      running_handle = CollHandle();
      if (!r.ok()) {
        r = r.WithContext(op.what + " on the MPI communicator (rank " + std::to_string(rank) + " of " +
                          std::to_string(size) + ")");
        if (broken.ok()) broken = r;
      }
    }
    op.handle.Complete(r);
  }
  bool finalize;
  {
    std::lock_guard<std::mutex> lock(mu);
    // After a timeout MPI's state is unknown and MPI_Finalize would wait for the dead
    // peer: leave it to the process exit.
    finalize = broken.ok() && init_status.ok();
  }
  if (finalize) {
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    if (owns_mpi) MPI_Finalize();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    thread_done = true;
  }
  cv.notify_all();
}

void MpiCommunicator::Shared::WatchdogMain() {
  std::unique_lock<std::mutex> lock(mu);
  while (!watchdog_stop) {
    cv.wait_for(lock, std::chrono::milliseconds(50));
    if (!running || !broken.ok() || Clock::now() - running_since < options.op_timeout) continue;
    broken = Status::TimedOut(
        running_what + " on the MPI communicator (rank " + std::to_string(rank) + " of " + std::to_string(size) +
        ") did not finish within " + std::to_string(std::chrono::duration<double>(options.op_timeout).count()) +
        " s: a peer rank is probably dead or stuck; the communicator is unusable");
    running_handle.Complete(broken);
    for (Op& op : queue) op.handle.Complete(broken);
    queue.clear();
    LOG(ERROR) << broken.ToString();
    cv.notify_all();
  }
}

Result<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Start(const MpiOptions& options) {
  auto shared = std::make_shared<Shared>();
  shared->options = options;
  shared->comm_thread = std::thread([s = shared] { s->CommMain(); });
  shared->watchdog = std::thread([s = shared] { s->WatchdogMain(); });
  std::unique_ptr<MpiCommunicator> comm(new MpiCommunicator(shared));
  std::unique_lock<std::mutex> lock(shared->mu);
  if (!shared->cv.wait_for(lock, options.init_timeout, [&] { return shared->init_done; })) {
    shared->broken = Status::TimedOut("MPI_Init_thread / MPI_Comm_split did not return within " +
                                      std::to_string(std::chrono::duration<double>(options.init_timeout).count()) +
                                      " s (did every process of the MPI world start?)");
    return shared->broken;  // the destructor abandons the stuck thread
  }
  if (!shared->init_status.ok()) {
    shared->broken = shared->init_status;
    return shared->init_status.WithContext("initialising MPI");
  }
  return comm;
}

MpiCommunicator::MpiCommunicator(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

MpiCommunicator::~MpiCommunicator() {
  Shared& s = *shared_;
  bool done;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.stopping = true;
    s.cv.notify_all();
    // The watchdog keeps running meanwhile, so a stuck operation ends this wait by
    // breaking the communicator.
    s.cv.wait(lock, [&] { return s.thread_done || (!s.broken.ok() && (s.running || !s.init_done)); });
    done = s.thread_done;
    s.watchdog_stop = true;
  }
  s.cv.notify_all();
  s.watchdog.join();
  if (done) {
    s.comm_thread.join();
  } else {
    LOG(WARNING) << "abandoning the MPI communication thread, stuck in MPI: " << s.broken.ToString();
    s.comm_thread.detach();  // it holds its own reference to the shared state
  }
}

int MpiCommunicator::rank() const { return shared_->rank; }
int MpiCommunicator::size() const { return shared_->size; }
int MpiCommunicator::world_rank() const { return shared_->world_rank; }
int MpiCommunicator::world_size() const { return shared_->world_size; }

Status MpiCommunicator::broken() const {
  std::lock_guard<std::mutex> lock(shared_->mu);
  return shared_->broken;
}

namespace {

CollHandle Enqueue(MpiCommunicator::Shared* s, Op op);

}  // namespace

Result<std::vector<std::string>> MpiCommunicator::AllGatherWorldStrings(const std::string& mine) {
  if (mine.size() > (size_t{1} << 20)) return Status::InvalidArgument("AllGatherWorldStrings: more than 1 MiB per rank");
  auto all = std::make_shared<std::vector<std::string>>();
  Op op;
  op.kind = OpKind::kRun;
  op.world = true;
  op.what = "exchange of job records over MPI_COMM_WORLD";
  op.fn = [mine, all](void* c) -> Status {
    MPI_Comm world = *static_cast<MPI_Comm*>(c);
    int n = 0;
    TESSERA_RETURN_IF_ERROR(Check(MPI_Comm_size(world, &n), "MPI_Comm_size"));
    std::vector<int> lens(static_cast<size_t>(n)), displs(static_cast<size_t>(n));
    int len = static_cast<int>(mine.size());
    TESSERA_RETURN_IF_ERROR(Check(MPI_Allgather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, world), "MPI_Allgather"));
    int64_t total = 0;
    for (int i = 0; i < n; ++i) {
      displs[static_cast<size_t>(i)] = static_cast<int>(total);
      total += lens[static_cast<size_t>(i)];
      if (lens[static_cast<size_t>(i)] < 0 || total > (int64_t{1} << 30)) {
        return Status::InvalidArgument("MPI rank " + std::to_string(i) + " sent a record of bad length");
      }
    }
    std::string buf(static_cast<size_t>(total), '\0');
    TESSERA_RETURN_IF_ERROR(Check(MPI_Allgatherv(mine.data(), len, MPI_CHAR, buf.data(), lens.data(), displs.data(),
                                                 MPI_CHAR, world),
                                  "MPI_Allgatherv"));
    for (int i = 0; i < n; ++i) {
      all->push_back(buf.substr(static_cast<size_t>(displs[static_cast<size_t>(i)]), static_cast<size_t>(lens[static_cast<size_t>(i)])));
    }
    return Status::OK();
  };
  CollHandle h = Enqueue(shared_.get(), std::move(op));
  TESSERA_RETURN_IF_ERROR(h.Wait(shared_->options.op_timeout + std::chrono::seconds(5)));
  return std::move(*all);
}

CollHandle MpiCommunicator::AllReduce(TensorView t, ReduceOp reduce, WireFormat wire) {
  Status st = ValidateAllReduce(t, wire);
  if (!st.ok()) return CollHandle::Failed(st);
  Op op;
  op.kind = OpKind::kAllReduce;
  op.what = Describe("all-reduce", t.nbytes());
  op.t = std::move(t);
  op.reduce = reduce;
  op.wire = wire;
  return Enqueue(shared_.get(), std::move(op));
}

CollHandle MpiCommunicator::Broadcast(TensorView t, int root) {
  if (root < 0 || root >= size()) {
    return CollHandle::Failed(Status::InvalidArgument("broadcast: root " + std::to_string(root) + " is outside [0, " +
                                                      std::to_string(size()) + ")"));
  }
  Op op;
  op.kind = OpKind::kBroadcast;
  op.what = Describe("broadcast", t.nbytes());
  op.t = std::move(t);
  op.root = root;
  return Enqueue(shared_.get(), std::move(op));
}

CollHandle MpiCommunicator::AllGather(TensorView in, TensorView out) {
  if (out.nbytes() != in.nbytes() * static_cast<size_t>(std::max(0, size()))) {
    return CollHandle::Failed(Status::InvalidArgument("all-gather: output has " + std::to_string(out.nbytes()) +
                                                      " bytes, need " + std::to_string(in.nbytes()) + " x " +
                                                      std::to_string(size()) + " ranks"));
  }
  if (in.nbytes() > static_cast<size_t>(INT_MAX)) {
    return CollHandle::Failed(Status::InvalidArgument("all-gather: more than 2 GiB per rank"));
  }
  Op op;
  op.kind = OpKind::kAllGather;
  op.what = Describe("all-gather", in.nbytes());
  op.t = std::move(in);
  op.out = std::move(out);
  return Enqueue(shared_.get(), std::move(op));
}

CollHandle MpiCommunicator::Barrier() {
  Op op;
  op.kind = OpKind::kBarrier;
  op.what = "barrier";
  return Enqueue(shared_.get(), std::move(op));
}

CollHandle MpiCommunicator::Run(std::function<Status(void*)> fn) {
  Op op;
  op.kind = OpKind::kRun;
  op.what = "raw MPI call";
  op.fn = std::move(fn);
  return Enqueue(shared_.get(), std::move(op));
}

namespace {

CollHandle Enqueue(MpiCommunicator::Shared* s, Op op) {
  if (s->size <= 0 && !op.world) {
    return CollHandle::Failed(Status::FailedPrecondition(op.what + ": this process is not a member of the communicator"));
  }
  op.handle = CollHandle::Pending();
  CollHandle h = op.handle;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->broken.ok()) return CollHandle::Failed(s->broken);
    if (s->stopping) return CollHandle::Failed(Status::Aborted(op.what + ": the communicator is shutting down"));
    s->queue.push_back(std::move(op));
  }
  s->cv.notify_all();
  return h;
}

}  // namespace

}  // namespace tessera::collective
