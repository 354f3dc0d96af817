#include "tests/wire/sample_messages.h"

#include <cstring>
#include <sstream>

namespace tessera::wire::testing {

namespace {

Buffer FloatRamp(uint64_t n) {
  Buffer b = Buffer::Allocate(n * sizeof(float));
  for (uint64_t i = 0; i < n; ++i) b.as<float>()[i] = 0.5f * static_cast<float>(i);
  return b;
}

Buffer Keys(uint64_t n) {
  Buffer b = Buffer::Allocate(n * sizeof(uint64_t));
  for (uint64_t i = 0; i < n; ++i) b.as<uint64_t>()[i] = 1000 + 7 * i;
  return b;
}

void MustAdd(OutMessage& m, Buffer b, DType t, uint64_t n) {
  Status st = m.AddPayload(std::move(b), t, n);
  if (!st.ok()) abort();  // test fixture bug
}

void FillDecl(capnp::ParamDecl::Builder d) {
  d.setName("emb");
  d.setKind(capnp::ParamKind::SPARSE);
  d.setDtype(capnp::DType::F32);
  auto shape = d.initShape(1);
  shape.set(0, 16);
  d.setInit(capnp::InitKind::NORMAL);
  d.setInitScale(0.25f);
  d.setSeed(99);
  auto o = d.initOptimizer();
  o.setKind(capnp::OptimizerKind::ADAM);
  o.setLr(0.001f);
  o.setBeta1(0.9f);
}

}  // namespace

OutMessage SampleMessage(Op op) {
  OutMessage m(op);
  m.SetJobId(kSampleJobId).SetRequestId(100 + static_cast<uint64_t>(op)).SetStep(42);
  m.SetSender(Role::WORKER, 3);
  Header::Builder h = m.header();
  h.setShardMapVersion(7);
  Body::Builder b = h.getBody();
  switch (op) {
    case Op::REGISTER: {
      auto r = b.initRegister();
      r.setRole(Role::SERVER);
      r.setRank(2);
      r.setHost("node-a");
      r.setDataEndpoint("tcp://127.0.0.1:5555");
      r.setPid(4242);
      r.setNumServers(2);
      r.setNumWorkers(4);
      break;
    }
    case Op::WELCOME: {
      auto w = b.initWelcome();
      w.setNumServers(2);
      w.setNumWorkers(4);
      w.setHeartbeatIntervalMs(500);
      w.setHeartbeatTimeoutMs(5000);
      w.setResumeStep(-1);
      w.setCheckpointPath("/ckpt");
      break;
    }
    case Op::DECLARE_PARAMS:
      FillDecl(b.initDeclareParams().initParams(1)[0]);
      break;
    case Op::SHARD_MAP: {
      auto s = b.initShardMap();
      s.setVersion(7);
      auto servers = s.initServers(2);
      servers[0].setRank(1);
      servers[0].setEndpoint("tcp://127.0.0.1:6001");
      servers[1].setRank(2);
      servers[1].setEndpoint("tcp://127.0.0.1:6002");
      FillDecl(s.initParams(1)[0]);
      auto d = s.initDense(1)[0];
      d.setId(0);
      d.setNumElements(1000);
      d.setChunkElements(512);
      auto cs = d.initChunkServer(2);
      cs.set(0, 0);
      cs.set(1, 1);
      s.initSparse(1)[0].setRowWidth(16);
      s.setSyncMode("ssp:2");
      s.setNumWorkers(4);
      s.setGradReduce("mean");
      break;
    }
    case Op::BARRIER:
      b.initBarrier().setBarrierId(77);
      break;
    case Op::HEARTBEAT:
      b.initHeartbeat().setStep(41);
      break;
    case Op::PUSH:
    case Op::PUSH_PULL: {
      auto d = b.initData();
      d.setParamId(5);
      d.setKind(capnp::ParamKind::DENSE);
      d.setBegin(100);
      d.setEnd(164);
      MustAdd(m, FloatRamp(64), DType::kF32, 64);
      break;
    }
    case Op::PULL: {
      auto d = b.initData();
      d.setParamId(6);
      d.setKind(capnp::ParamKind::SPARSE);
      d.setNumKeys(10);
      MustAdd(m, Keys(10), DType::kU64, 10);
      break;
    }
    case Op::RESPONSE: {
      auto r = b.initResponse();
      r.setParamId(5);
      r.setAppliedStep(41);
      MustAdd(m, FloatRamp(300), DType::kF32, 300);  // >= 1 KiB: goes zero-copy
      break;
    }
    case Op::ERROR: {
      auto e = b.initError();
      e.setCode(static_cast<uint8_t>(StatusCode::kNotFound));
      e.setMessage("no such param");
      e.setInReplyTo(Op::PULL);
      break;
    }
    case Op::CKPT_PREPARE: {
      auto c = b.initCkptPrepare();
      c.setStep(40);
      c.setDirectory("/ckpt/40");
      c.setFull(true);
      break;
    }
    case Op::CKPT_DONE: {
      auto c = b.initCkptDone();
      c.setStep(40);
      c.setDigest(0xabcdef);
      c.setBytesWritten(1 << 20);
      c.setOk(true);
      c.setMessage("fine");
      break;
    }
    case Op::CKPT_COMMIT: {
      auto c = b.initCkptCommit();
      c.setStep(40);
      c.setCommitted(true);
      break;
    }
    case Op::SHUTDOWN: {
      auto s = b.initShutdown();
      s.setReason("done");
      s.setExitCode(3);
      break;
    }
    case Op::STEP_DONE: {
      auto s = b.initStepDone();
      s.setStep(42);
      s.setLoss(0.125);
      s.setSamples(640);
      break;
    }
    case Op::STATUS: {
      auto s = b.initStatus();
      auto mem = s.initMembers(1)[0];
      mem.setRole(Role::WORKER);
      mem.setRank(3);
      mem.setHost("node-b");
      mem.setStep(42);
      mem.setLastHeartbeatMsAgo(12);
      s.setMinStep(40);
      s.setMaxStep(42);
      s.setLastCheckpointStep(40);
      s.setSlowestWorkerRank(3);
      break;
    }
    case Op::PREEMPT: {
      auto p = b.initPreempt();
      p.setSignal(15);
      p.setUrgent(true);
      break;
    }
    case Op::RENDEZVOUS: {
      auto r = b.initRendezvous();
      r.setKey("nccl-id");
      r.setValue(kj::StringPtr("\x01\x02\x03").asBytes());
      r.setPut(true);
      break;
    }
  }
  return m;
}

#define DIFF_EXPECT(cond)                      \
  do {                                         \
    if (!(cond)) out << "failed: " #cond "\n"; \
  } while (0)

std::string DiffFromSample(const InMessage& msg, Op op) {
  std::ostringstream out;
  Header::Reader h = msg.header();
  DIFF_EXPECT(msg.op() == op);
  DIFF_EXPECT(h.getProtocolVersion() == kProtocolVersion);
  DIFF_EXPECT(msg.job_id() == kSampleJobId);
  DIFF_EXPECT(msg.request_id() == 100 + static_cast<uint64_t>(op));
  DIFF_EXPECT(msg.step() == 42);
  DIFF_EXPECT(h.getSenderRole() == Role::WORKER);
  DIFF_EXPECT(h.getSenderRank() == 3);
  DIFF_EXPECT(h.getShardMapVersion() == 7);
  Body::Reader b = h.getBody();
  switch (op) {
    case Op::REGISTER: {
      DIFF_EXPECT(b.isRegister());
      if (!b.isRegister()) break;
      auto r = b.getRegister();
      DIFF_EXPECT(r.getRole() == Role::SERVER && r.getRank() == 2);
      DIFF_EXPECT(r.getHost() == "node-a" && r.getDataEndpoint() == "tcp://127.0.0.1:5555");
      DIFF_EXPECT(r.getPid() == 4242 && r.getNumServers() == 2 && r.getNumWorkers() == 4);
      break;
    }
    case Op::WELCOME: {
      DIFF_EXPECT(b.isWelcome());
      if (!b.isWelcome()) break;
      auto w = b.getWelcome();
      DIFF_EXPECT(w.getNumServers() == 2 && w.getNumWorkers() == 4);
      DIFF_EXPECT(w.getHeartbeatIntervalMs() == 500 && w.getHeartbeatTimeoutMs() == 5000);
      DIFF_EXPECT(w.getResumeStep() == -1 && w.getCheckpointPath() == "/ckpt");
      break;
    }
    case Op::DECLARE_PARAMS: {
      DIFF_EXPECT(b.isDeclareParams());
      if (!b.isDeclareParams()) break;
      auto p = b.getDeclareParams().getParams();
      DIFF_EXPECT(p.size() == 1);
      if (p.size() != 1) break;
      DIFF_EXPECT(p[0].getName() == "emb" && p[0].getShape().size() == 1 &&
                  p[0].getShape()[0] == 16);
      DIFF_EXPECT(p[0].getOptimizer().getKind() == capnp::OptimizerKind::ADAM);
      DIFF_EXPECT(p[0].getInitScale() == 0.25f && p[0].getSeed() == 99);
      break;
    }
    case Op::SHARD_MAP: {
      DIFF_EXPECT(b.isShardMap());
      if (!b.isShardMap()) break;
      auto s = b.getShardMap();
      DIFF_EXPECT(s.getVersion() == 7 && s.getServers().size() == 2);
      DIFF_EXPECT(s.getServers()[1].getEndpoint() == "tcp://127.0.0.1:6002");
      DIFF_EXPECT(s.getDense().size() == 1 && s.getDense()[0].getChunkServer().size() == 2);
      DIFF_EXPECT(s.getDense()[0].getChunkServer()[1] == 1);
      DIFF_EXPECT(s.getSparse()[0].getRowWidth() == 16 && s.getSyncMode() == "ssp:2");
      DIFF_EXPECT(s.getGradReduce() == "mean" && s.getParams()[0].getName() == "emb");
      break;
    }
    case Op::BARRIER:
      DIFF_EXPECT(b.isBarrier() && b.getBarrier().getBarrierId() == 77);
      break;
    case Op::HEARTBEAT:
      DIFF_EXPECT(b.isHeartbeat() && b.getHeartbeat().getStep() == 41);
      break;
    case Op::PUSH:
    case Op::PUSH_PULL: {
      DIFF_EXPECT(b.isData());
      if (!b.isData()) break;
      auto d = b.getData();
      DIFF_EXPECT(d.getParamId() == 5 && d.getBegin() == 100 && d.getEnd() == 164);
      DIFF_EXPECT(msg.num_payloads() == 1);
      if (msg.num_payloads() != 1) break;
      DIFF_EXPECT(msg.payload_dtype(0) == DType::kF32 && msg.payload_elements(0) == 64);
      const auto* f = reinterpret_cast<const float*>(msg.payload(0).data());
      for (int i = 0; i < 64; ++i) {
        if (f[i] != 0.5f * static_cast<float>(i)) {
          out << "payload value " << i << " is " << f[i] << "\n";
          break;
        }
      }
      break;
    }
    case Op::PULL: {
      DIFF_EXPECT(b.isData());
      if (!b.isData()) break;
      DIFF_EXPECT(b.getData().getParamId() == 6 && b.getData().getNumKeys() == 10);
      DIFF_EXPECT(msg.num_payloads() == 1 && msg.payload_dtype(0) == DType::kU64);
      if (msg.num_payloads() != 1) break;
      const auto* k = reinterpret_cast<const uint64_t*>(msg.payload(0).data());
      for (uint64_t i = 0; i < 10; ++i) DIFF_EXPECT(k[i] == 1000 + 7 * i);
      break;
    }
    case Op::RESPONSE: {
      DIFF_EXPECT(b.isResponse() && b.getResponse().getAppliedStep() == 41);
      DIFF_EXPECT(msg.num_payloads() == 1 && msg.payload(0).size() == 1200);
      if (msg.num_payloads() != 1) break;
      const auto* f = reinterpret_cast<const float*>(msg.payload(0).data());
      DIFF_EXPECT(f[0] == 0.0f && f[299] == 149.5f);
      break;
    }
    case Op::ERROR:
      DIFF_EXPECT(b.isError() && b.getError().getMessage() == "no such param");
      DIFF_EXPECT(b.getError().getInReplyTo() == Op::PULL);
      DIFF_EXPECT(StatusFromError(msg).code() == StatusCode::kNotFound);
      break;
    case Op::CKPT_PREPARE:
      DIFF_EXPECT(b.isCkptPrepare() && b.getCkptPrepare().getDirectory() == "/ckpt/40");
      DIFF_EXPECT(b.getCkptPrepare().getStep() == 40 && b.getCkptPrepare().getFull());
      break;
    case Op::CKPT_DONE:
      DIFF_EXPECT(b.isCkptDone() && b.getCkptDone().getDigest() == 0xabcdef);
      DIFF_EXPECT(b.getCkptDone().getBytesWritten() == (1 << 20) && b.getCkptDone().getOk());
      DIFF_EXPECT(b.getCkptDone().getMessage() == "fine");
      break;
    case Op::CKPT_COMMIT:
      DIFF_EXPECT(b.isCkptCommit() && b.getCkptCommit().getCommitted());
      break;
    case Op::SHUTDOWN:
      DIFF_EXPECT(b.isShutdown() && b.getShutdown().getReason() == "done");
      DIFF_EXPECT(b.getShutdown().getExitCode() == 3);
      break;
    case Op::STEP_DONE:
      DIFF_EXPECT(b.isStepDone() && b.getStepDone().getLoss() == 0.125);
      DIFF_EXPECT(b.getStepDone().getSamples() == 640);
      break;
    case Op::STATUS:
      DIFF_EXPECT(b.isStatus() && b.getStatus().getMembers().size() == 1);
      DIFF_EXPECT(b.getStatus().getMembers()[0].getHost() == "node-b");
      DIFF_EXPECT(b.getStatus().getSlowestWorkerRank() == 3);
      break;
    case Op::PREEMPT:
      DIFF_EXPECT(b.isPreempt() && b.getPreempt().getSignal() == 15 && b.getPreempt().getUrgent());
      break;
    case Op::RENDEZVOUS:
      DIFF_EXPECT(b.isRendezvous() && b.getRendezvous().getKey() == "nccl-id");
      DIFF_EXPECT(b.getRendezvous().getValue().size() == 3 && b.getRendezvous().getPut());
      break;
  }
  if (op != Op::PUSH && op != Op::PUSH_PULL && op != Op::PULL && op != Op::RESPONSE) {
    DIFF_EXPECT(msg.num_payloads() == 0);
  }
  return out.str();
}

}  // namespace tessera::wire::testing
