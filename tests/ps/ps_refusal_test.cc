// A running coordinator, two servers and a worker in this process (real ZeroMQ sockets on
// 127.0.0.1); a raw socket then sends requests a server or the coordinator must refuse.
// Each refusal must come back as an error reply, and the next good request must still be
// served.
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "coordinator/coordinator.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "tests/wire/raw_worker.h"
#include "wire/socket.h"
#include "worker/client.h"

namespace tessera {
namespace {

using wire::Op;
using wire::OutMessage;

constexpr uint64_t kJob = 4242;

class RefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_ = *wire::Context::Create();
    CoordinatorOptions co;
    co.job_id = kJob;
    co.num_servers = 2;
    co.num_workers = 1;
    co.shard.chunk_bytes = 1024;
    auto c = Coordinator::Start(co, ctx_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    coord_ = std::move(c).value();
    for (int r = 1; r <= 2; ++r) {
      paramserver::ServerOptions so;
      so.coordinator = coord_->endpoint();
      so.job_id = kJob;
      so.rank = r;
      so.num_servers = 2;
      so.num_workers = 1;
      auto s = paramserver::ParamServer::Start(so, ctx_);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      servers_.push_back(std::move(s).value());
    }
    worker::ClientOptions wo;
    wo.coordinator = coord_->endpoint();
    wo.job_id = kJob;
    wo.rank = 3;
    wo.num_servers = 2;
    wo.num_workers = 1;
    auto cl = worker::Client::Connect(wo, ctx_);
    ASSERT_TRUE(cl.ok()) << cl.status().ToString();
    client_ = std::move(cl).value();
    ParamSpec w;
    w.name = "w";
    w.shape = {1000};  // 4 chunks of 256 elements over 2 servers
    w.init = InitKind::kConstant;
    w.init_scale = 1.0f;
    ParamSpec e = w;
    e.name = "e";
    e.kind = ParamKind::kSparse;
    e.shape = {2};
    ASSERT_OK(client_->DeclareParams({w, e}));
    server0_ = client_->shard_map().data().servers[0].endpoint;
    version_ = client_->shard_map().version();
    // A range server 0 owns, and one it does not.
    auto pieces = client_->shard_map().SplitDense(0, 0, 1000);
    ASSERT_TRUE(pieces.ok());
    for (const auto& p : *pieces) (p.server == 0 ? mine_ : theirs_) = {p.begin, p.end};
    ASSERT_GT(mine_.size(), 0u);
    ASSERT_GT(theirs_.size(), 0u);
  }

  void TearDown() override {
    if (client_) client_->Finish(0, "test done").IgnoreError();
    if (coord_) coord_->Wait(std::chrono::seconds(10));
    for (auto& s : servers_) s->Wait(std::chrono::seconds(10));
  }

  std::unique_ptr<wire::Socket> RawSocket(uint64_t job_id, const std::string& endpoint) {
    auto s = wire::testing::RawWorkerSocket(ctx_, job_id, 3, endpoint);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return std::move(s).value();
  }

  OutMessage DenseRequest(Op op, KeyRange r, uint64_t version) {
    OutMessage m(op);
    m.header().setShardMapVersion(version);
    m.SetStep(-1);
    auto d = m.header().getBody().initData();
    d.setParamId(0);
    d.setKind(wire::capnp::ParamKind::DENSE);
    d.setBegin(r.begin);
    d.setEnd(r.end);
    return m;
  }

  Status CallStatus(wire::Socket& s, OutMessage&& m) {
    return wire::Call(s, std::move(m), Deadline::FromMillis(5000)).status();
  }

  // A good pull of server 0's range still works.
  void ExpectStillServing(wire::Socket& s) {
    auto rep = wire::Call(s, DenseRequest(Op::PULL, mine_, version_), Deadline::FromMillis(5000));
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    ASSERT_EQ(rep->num_payloads(), 1u);
    auto bytes = rep->payload(0);
    ASSERT_EQ(bytes.size(), mine_.size() * sizeof(float));
    EXPECT_EQ(reinterpret_cast<const float*>(bytes.data())[0], 1.0f);
  }

  std::shared_ptr<wire::Context> ctx_;
  std::unique_ptr<Coordinator> coord_;
  std::vector<std::unique_ptr<paramserver::ParamServer>> servers_;
  std::unique_ptr<worker::Client> client_;
  std::string server0_;
  uint64_t version_ = 0;
  KeyRange mine_, theirs_;
};

TEST_F(RefusalTest, StaleShardMapVersion) {
  auto s = RawSocket(kJob, server0_);
  Status st = CallStatus(*s, DenseRequest(Op::PULL, mine_, version_ + 7));
  EXPECT_EQ(st.code(), StatusCode::kVersionMismatch) << st.ToString();
  ExpectStillServing(*s);
}

TEST_F(RefusalTest, RangeOwnedByAnotherServer) {
  auto s = RawSocket(kJob, server0_);
  Status st = CallStatus(*s, DenseRequest(Op::PULL, theirs_, version_));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("server 1"), std::string::npos) << st.ToString();
  ExpectStillServing(*s);
}

TEST_F(RefusalTest, PushWithWrongDtype) {
  auto s = RawSocket(kJob, server0_);
  OutMessage m = DenseRequest(Op::PUSH, mine_, version_);
  m.SetStep(0);
  ASSERT_OK(m.AddPayload(Buffer::Zeros(mine_.size() * 8), DType::kF64, mine_.size()));
  Status st = CallStatus(*s, std::move(m));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("f32"), std::string::npos) << st.ToString();
  ExpectStillServing(*s);
}

TEST_F(RefusalTest, PushWithWrongLength) {
  auto s = RawSocket(kJob, server0_);
  OutMessage m = DenseRequest(Op::PUSH, mine_, version_);
  m.SetStep(0);
  ASSERT_OK(m.AddPayload(Buffer::Zeros((mine_.size() - 1) * 4), DType::kF32, mine_.size() - 1));
  Status st = CallStatus(*s, std::move(m));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  ExpectStillServing(*s);
}

TEST_F(RefusalTest, WrongJobId) {
  auto bad = RawSocket(kJob + 1, server0_);
  Status st = CallStatus(*bad, DenseRequest(Op::PULL, mine_, version_));
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("job"), std::string::npos) << st.ToString();
  auto good = RawSocket(kJob, server0_);
  ExpectStillServing(*good);
}

TEST_F(RefusalTest, DuplicateRankRegistration) {
  auto s = RawSocket(kJob, coord_->endpoint());
  OutMessage reg(Op::REGISTER);
  auto r = reg.header().getBody().initRegister();
  r.setRole(wire::Role::WORKER);
  r.setRank(3);
  r.setHost("impostor");
  r.setNumServers(2);
  r.setNumWorkers(1);
  Status st = CallStatus(*s, std::move(reg));
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_NE(st.message().find("duplicate registration: worker 0 (rank 3)"), std::string::npos) << st.ToString();
  // The real worker is unaffected.
  std::vector<float> out(1000);
  ASSERT_OK(client_->Pull(0, TensorView{out.data(), DType::kF32, {1000}, Device::kCPU}, -1).Wait(std::chrono::seconds(5)));
  EXPECT_EQ(out[999], 1.0f);
}

TEST_F(RefusalTest, RegistrationForAJobOfAnotherSize) {
  auto s = RawSocket(kJob, coord_->endpoint());
  OutMessage reg(Op::REGISTER);
  auto r = reg.header().getBody().initRegister();
  r.setRole(wire::Role::SERVER);
  r.setRank(1);
  r.setHost("elsewhere");
  r.setDataEndpoint("tcp://127.0.0.1:1");
  r.setNumServers(3);
  r.setNumWorkers(1);
  Status st = CallStatus(*s, std::move(reg));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  EXPECT_NE(st.message().find("3 servers"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace tessera
