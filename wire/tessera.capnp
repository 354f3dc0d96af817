# The single definition of every message on Tessera's wire.
#
# A message on a socket is: [routing id frame, ROUTER side only] + one Header frame
# (this schema, unpacked Cap'n Proto, single segment) + zero or more raw payload frames.
# Header.payloads describes each payload frame (dtype, element count, byte length);
# the codec refuses a message whose frames do not match it.
#
# Ordinals are frozen: add fields with new ordinals, never renumber or reuse one.
# Bump kProtocolVersion in wire/protocol.h for any change a peer must understand.
@0xdcf2c0b74d1d66ec;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("tessera::wire::capnp");

enum Role {
  coordinator @0;
  server @1;
  worker @2;
  tool @3;        # `tessera status`, `tessera ckpt`, tests
}

# Values equal tessera::DType (common/dtype.h).
enum DType {
  f32 @0;
  f16 @1;
  bf16 @2;
  f64 @3;
  i32 @4;
  i64 @5;
  u64 @6;
}

enum Op {
  register @0;          # peer -> coordinator: RegisterRequest
  welcome @1;           # coordinator -> peer: Welcome (reply to register)
  declareParams @2;     # worker -> coordinator: ParamDecls (every worker sends the same list)
  shardMap @3;          # coordinator -> peer: ShardMap (after everyone registered and declared)
  barrier @4;           # peer -> coordinator: Barrier; the reply (same op) releases it
  heartbeat @5;         # peer -> coordinator: Heartbeat; coordinator replies with the same op
  push @6;              # worker -> server: DataRequest + payloads (gradients)
  pull @7;              # worker -> server: DataRequest (+ keys payload for sparse)
  pushPull @8;          # worker -> server: push, then reply with the updated values
  response @9;          # reply to push/pull/pushPull/barrier...: DataResponse + payloads
  error @10;            # reply to anything: ErrorInfo
  ckptPrepare @11;      # coordinator -> server/worker: CheckpointPrepare
  ckptDone @12;         # server/worker -> coordinator: CheckpointDone
  ckptCommit @13;       # coordinator -> server/worker: CheckpointCommit
  shutdown @14;         # coordinator -> peer (or peer -> coordinator): Shutdown
  stepDone @15;         # worker -> coordinator: StepReport (step clock, metrics)
  status @16;           # tool -> coordinator: job status request; reply JobStatus
  preempt @17;          # server/worker -> coordinator: PreemptRequest (a signal arrived)
  rendezvous @18;       # worker -> coordinator: Rendezvous put/get; the reply carries the same op
}

struct Header {
  protocolVersion @0 :UInt32;     # must equal kProtocolVersion
  jobId @1 :UInt64;               # every process of one job shares it
  requestId @2 :UInt64;           # chosen by the requester; replies echo it
  op @3 :Op;
  senderRole @4 :Role;
  senderRank @5 :Int32;           # rank in the job (coordinator is 0)
  shardMapVersion @6 :UInt64;     # data plane: version the requester routed with
  step @7 :Int64;                 # training step the message belongs to (-1: none)
  payloads @8 :List(PayloadDesc); # one per payload frame, in order

  body :union {
    none @9 :Void;
    register @10 :RegisterRequest;
    welcome @11 :Welcome;
    declareParams @12 :ParamDecls;
    shardMap @13 :ShardMap;
    barrier @14 :Barrier;
    heartbeat @15 :Heartbeat;
    data @16 :DataRequest;
    response @17 :DataResponse;
    error @18 :ErrorInfo;
    ckptPrepare @19 :CheckpointPrepare;
    ckptDone @20 :CheckpointDone;
    ckptCommit @21 :CheckpointCommit;
    shutdown @22 :Shutdown;
    stepDone @23 :StepReport;
    status @24 :JobStatus;
    preempt @25 :PreemptRequest;
    rendezvous @26 :Rendezvous;
  }
}

struct PayloadDesc {
  dtype @0 :DType;
  numElements @1 :UInt64;
  byteLength @2 :UInt64;          # must equal numElements * size(dtype) and the frame's size
}

struct RegisterRequest {
  role @0 :Role;
  rank @1 :Int32;
  host @2 :Text;
  dataEndpoint @3 :Text;          # servers: where workers connect ("tcp://127.0.0.1:5555")
  pid @4 :UInt32;
  numServers @5 :UInt32;          # what this peer was told the job has (must agree)
  numWorkers @6 :UInt32;
}

struct Welcome {
  numServers @0 :UInt32;
  numWorkers @1 :UInt32;
  heartbeatIntervalMs @2 :UInt32;
  heartbeatTimeoutMs @3 :UInt32;
  resumeStep @4 :Int64;           # -1 fresh start; else the checkpoint step to resume from
  checkpointPath @5 :Text;       # the step directory to resume from ("" fresh)
  resumeEpoch @6 :Int64;          # workers: data cursor at resumeStep
  resumePosition @7 :Int64;
  sharedMarker @8 :Text;          # a file rank 0 made in --checkpoint_dir; a peer that reads or
                                  # writes checkpoints must see it ("" when it need not)
}

enum ParamKind {
  dense @0;
  sparse @1;
}

enum InitKind {
  zeros @0;
  uniform @1;       # U(-scale, scale)
  normal @2;        # N(0, scale^2)
  constant @3;      # every element = scale
}

enum OptimizerKind {
  sgd @0;
  momentum @1;
  adagrad @2;
  adam @3;
  adamw @4;
}

struct OptimizerConfig {
  kind @0 :OptimizerKind;
  lr @1 :Float32;
  momentum @2 :Float32;
  nesterov @3 :Bool;
  beta1 @4 :Float32;
  beta2 @5 :Float32;
  eps @6 :Float32;
  weightDecay @7 :Float32;
  clipNorm @8 :Float32;           # 0: no clipping; else clip the step's gradient L2 norm per tensor chunk
  initialAccumulator @9 :Float32; # AdaGrad
}

struct ParamDecl {
  name @0 :Text;
  kind @1 :ParamKind;
  dtype @2 :DType;
  shape @3 :List(UInt64);         # dense: the tensor's shape; sparse: [rowWidth]
  init @4 :InitKind;
  initScale @5 :Float32;
  seed @6 :UInt64;
  optimizer @7 :OptimizerConfig;
}

struct ParamDecls {
  params @0 :List(ParamDecl);
}

struct ServerInfo {
  rank @0 :Int32;
  endpoint @1 :Text;
}

# Dense tensor `id` is split into chunks of chunkElements (the last may be shorter);
# chunk i lives on server chunkServer[i] (server index, 0..S-1).
struct DenseShard {
  id @0 :UInt32;
  numElements @1 :UInt64;
  chunkElements @2 :UInt64;
  chunkServer @3 :List(UInt32);
}

# Sparse table `id`: key k lives on server Mix64(k ^ Mix64(id)) % S (common/hash.h).
struct SparseShard {
  id @0 :UInt32;
  rowWidth @1 :UInt32;
}

struct ShardMap {
  version @0 :UInt64;
  servers @1 :List(ServerInfo);
  params @2 :List(ParamDecl);     # index in this list is the parameter id
  dense @3 :List(DenseShard);
  sparse @4 :List(SparseShard);
  syncMode @5 :Text;              # "bsp", "ssp:K", "asp"
  numWorkers @6 :UInt32;
  gradReduce @7 :Text;            # "mean" or "sum"
}

struct Barrier {
  barrierId @0 :UInt64;
  # >= 0 on a worker's end-of-training barrier: the step boundary its training ended
  # at, where the coordinator takes the job's final checkpoint (docs/checkpoints.md).
  finalStep @1 :Int64 = -1;
}

struct Heartbeat {
  step @0 :Int64;
  metrics @1 :List(MetricSample);  # at most once per --metrics_interval_s; empty otherwise
}

# One measurement of one process (common/metrics_registry.h, docs/metrics.md). Names carry
# no prefix ("steps_total"); the coordinator adds tessera_ and the role/rank labels.
enum MetricKind {
  counter @0;     # monotonic since the process started
  gauge @1;       # the current value
  quantile @2;    # a summary's quantile (field quantile) over the last reporting window
}

struct MetricSample {
  name @0 :Text;
  kind @1 :MetricKind;
  value @2 :Float64;
  quantile @3 :Float64;           # kind quantile: 0.5, 0.99
  peerRank @4 :Int32 = -1;        # the server this value is about (workers' per-server values)
  table @5 :Text;                 # the sparse table this value is about (servers' per-table values); "" none
}

# A dense request names an element range [begin, end) of parameter paramId; a sparse
# request carries numKeys uint64 keys in payload frame 0. Push values follow in the
# next payload frame (dense: end-begin elements; sparse: numKeys * rowWidth elements).
struct DataRequest {
  paramId @0 :UInt32;
  kind @1 :ParamKind;
  begin @2 :UInt64;
  end @3 :UInt64;
  numKeys @4 :UInt64;
  wantDigest @5 :UInt8;           # pull: 1 = reply with the server's whole store digest,
                                  # 2 = its sparse rows' part only; 0 = none
}

struct DataResponse {
  paramId @0 :UInt32;
  appliedStep @1 :Int64;          # newest step whose update these values include
  storeDigest @2 :UInt64;         # what wantDigest asked for (ShardStore::Digest, summable)
}

struct ErrorInfo {
  code @0 :UInt8;                 # tessera::StatusCode
  message @1 :Text;
  inReplyTo @2 :Op;
}

# Two-phase checkpoint (docs/checkpoints.md): coordinator -> every server and worker.
# Servers snapshot at the boundary of `step` (every update of step-1 applied, none of
# `step`) and write `directory`/server-<index> in the background; workers report their
# state at that boundary.
struct CheckpointPrepare {
  step @0 :Int64;
  directory @1 :Text;             # the step directory
  full @2 :Bool;                  # false: sparse tables write only rows changed since parentStep
  parentStep @3 :Int64;           # -1 when full
}

struct CheckpointDone {
  step @0 :Int64;
  digest @1 :UInt64;              # servers, and worker 0 under --sync=allreduce|hybrid (its
                                  # replica part): the database digest (checkpoint/shard_db.h)
  bytesWritten @2 :UInt64;
  ok @3 :Bool;
  message @4 :Text;               # why not ok
  storeDigest @5 :UInt64;         # servers: ShardStore::Digest() of the snapshot
  records @6 :UInt64;             # servers, worker 0's replica (0: none): records written
  nextStep @7 :Int64;             # workers: the step the worker runs next
  dataEpoch @8 :Int64;            # workers: data cursor
  dataPosition @9 :Int64;
}

struct CheckpointCommit {
  step @0 :Int64;
  committed @1 :Bool;             # false: the attempt is abandoned (its directory is garbage)
  bytesWritten @2 :UInt64;        # every participant's bytes (logs, worker 0's metrics)
}

struct PreemptRequest {
  signal @0 :Int32;               # the signal the peer got
  urgent @1 :Bool;                # a second signal: stop at once
}

# A small value the workers share through the coordinator (docs/protocol.md
# "Rendezvous"): worker 0 puts the NCCL unique id, the others get it. A get of a key
# nobody has put yet is answered at once with found = false (the worker polls).
struct Rendezvous {
  key @0 :Text;                   # 1..128 bytes
  value @1 :Data;                 # put: at most 4096 bytes; reply: the stored value
  put @2 :Bool;                   # request: true = store `value` under `key`, false = read it
  found @3 :Bool;                 # reply: the key holds a value (always true after a put)
}

struct Shutdown {
  reason @0 :Text;
  exitCode @1 :Int32;
}

struct StepReport {
  step @0 :Int64;
  loss @1 :Float64;
  samples @2 :UInt64;
}

struct MemberStatus {
  role @0 :Role;
  rank @1 :Int32;
  host @2 :Text;
  step @3 :Int64;
  lastHeartbeatMsAgo @4 :UInt64;
  metrics @5 :List(MetricSample); # the latest the member reported
  stepsPerSec @6 :Float64;        # from its last two reports (0 before that)
  samplesPerSec @7 :Float64;
  finished @8 :Bool;
  metricsAgeMs @9 :UInt64;        # how old `metrics` is
}

struct JobStatus {
  members @0 :List(MemberStatus);
  minStep @1 :Int64;
  maxStep @2 :Int64;
  lastCheckpointStep @3 :Int64;
  slowestWorkerRank @4 :Int32;
  numServers @5 :UInt32;
  numWorkers @6 :UInt32;
  lastCheckpointUnixMs @7 :Int64; # when it committed (0: none in this run)
  trainingStarted @8 :Bool;
  uptimeMs @9 :UInt64;            # since the coordinator started
}
