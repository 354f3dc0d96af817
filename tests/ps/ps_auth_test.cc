// CURVE: the job key file, and a running job (coordinator, server, worker in this
// process on 127.0.0.1) that refuses peers without the job's key while it keeps serving
// its own workers; registrations with a wrong job id or protocol version are refused
// with errors naming both values.
#include <glog/logging.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <zmq.h>

#include <fstream>
#include <thread>

#include "coordinator/coordinator.h"
#include "launch/job_auth.h"
#include "paramserver/server.h"
#include "tests/testutil/testutil.h"
#include "wire/curve.h"
#include "wire/protocol.h"
#include "wire/socket.h"
#include "worker/client.h"

namespace tessera {
namespace {

using wire::Op;
using wire::OutMessage;

constexpr uint64_t kJob = 5151;

TEST(CurveKeyFile, RoundTripIsPrivateAndNeverOverwritten) {
  ASSERT_TRUE(wire::CurveAvailable()) << "this libzmq lacks CURVE";
  testing::TempDir dir;
  const std::string path = dir.path() + "/job.key";
  auto keys = wire::GenerateCurveKeys();
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_OK(wire::WriteCurveKeyFile(path, *keys));
  struct stat sb;
  ASSERT_EQ(::stat(path.c_str(), &sb), 0);
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  auto back = wire::ReadCurveKeyFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->public_z85, keys->public_z85);
  EXPECT_EQ(back->secret_z85, keys->secret_z85);
  // A second writer must not replace the key the job already uses.
  auto other = wire::GenerateCurveKeys();
  Status st = wire::WriteCurveKeyFile(path, *other);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition) << st.ToString();
  EXPECT_EQ(wire::ReadCurveKeyFile(path)->secret_z85, keys->secret_z85);
}

TEST(CurveKeyFile, RefusesReadableByOthersAndMalformedFiles) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/job.key";
  auto keys = *wire::GenerateCurveKeys();
  ASSERT_OK(wire::WriteCurveKeyFile(path, keys));
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto r = wire::ReadCurveKeyFile(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("mode 0644"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos) << r.status().ToString();

  auto write = [&](const std::string& name, const std::string& text) {
    const std::string p = dir.path() + "/" + name;
    std::ofstream(p) << text;
    ::chmod(p.c_str(), 0600);
    return p;
  };
  auto other = *wire::GenerateCurveKeys();
  r = wire::ReadCurveKeyFile(write("mismatch", "public " + other.public_z85 + "\nsecret " + keys.secret_z85 + "\n"));
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("does not belong"), std::string::npos) << r.status().ToString();
  r = wire::ReadCurveKeyFile(write("short", "public abc\nsecret " + keys.secret_z85 + "\n"));
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("line 1"), std::string::npos) << r.status().ToString();
  r = wire::ReadCurveKeyFile(write("nosecret", "public " + keys.public_z85 + "\n"));
  EXPECT_NE(r.status().message().find("lacks its secret key"), std::string::npos) << r.status().ToString();
  r = wire::ReadCurveKeyFile(dir.path() + "/missing");
  EXPECT_EQ(r.status().code(), StatusCode::kIOError);
}

TEST(JobAuth, FlagResolution) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/shared.key";
  const Duration wait = std::chrono::milliseconds(300);
  // auto, loopback, no key: open, with a warning.
  auto a = launch::ResolveJobAuth("auto", "", {}, 1, false, wait);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->mode, launch::AuthMode::kNone);
  // auto across hosts without a key, and mac or curve without a key: refused, saying what to do.
  for (auto [mode, spans] : {std::pair{"auto", true}, std::pair{"curve", false}, std::pair{"mac", false}}) {
    a = launch::ResolveJobAuth(mode, "", {}, 1, spans, wait);
    ASSERT_FALSE(a.ok()) << mode;
    EXPECT_NE(a.status().message().find("--auth_key_file"), std::string::npos) << a.status().ToString();
  }
  EXPECT_FALSE(launch::ResolveJobAuth("kerberos", "", {}, 0, false, wait).ok());
  // A rank other than 0 waits for the file, then gives up naming it.
  a = launch::ResolveJobAuth("curve", path, {}, 3, true, wait);
  ASSERT_EQ(a.status().code(), StatusCode::kTimedOut) << a.status().ToString();
  EXPECT_NE(a.status().message().find(path), std::string::npos);
  // Rank 0 creates it; the others (here through the environment) read the same key.
  auto r0 = launch::ResolveJobAuth("auto", path, {}, 0, true, wait);
  ASSERT_TRUE(r0.ok()) << r0.status().ToString();
  EXPECT_EQ(r0->mode, launch::AuthMode::kMac) << "auto with a key file must pick mac";
  auto r3 = launch::ResolveJobAuth("auto", "", {{launch::kAuthKeyFileEnv, path}}, 3, true, wait);
  ASSERT_TRUE(r3.ok()) << r3.status().ToString();
  EXPECT_EQ(r3->keys.secret_z85, r0->keys.secret_z85);
  // Explicit curve and mac read the same file.
  auto c = launch::ResolveJobAuth("curve", path, {}, 3, true, wait);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->mode, launch::AuthMode::kCurve);
  auto m = launch::ResolveJobAuth("mac", path, {}, 3, true, wait);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->mode, launch::AuthMode::kMac);
  // none ignores a key.
  EXPECT_EQ(launch::ResolveJobAuth("none", path, {}, 0, true, wait)->mode, launch::AuthMode::kNone);
}

// Captures WARNING lines.
class WarningSink : public google::LogSink {
 public:
  WarningSink() { google::AddLogSink(this); }
  ~WarningSink() override { google::RemoveLogSink(this); }
  void send(google::LogSeverity severity, const char*, const char*, int, const google::LogMessageTime&,
            const char* message, size_t len) override {
    if (severity >= google::GLOG_WARNING) text += std::string(message, len) + "\n";
  }
  std::string text;
};

TEST(JobAuth, NoneWarnsOnlyAcrossHosts) {
  {
    WarningSink sink;
    ASSERT_TRUE(launch::ResolveJobAuth("none", "", {}, 2, false, std::chrono::milliseconds(10)).ok());
    EXPECT_EQ(sink.text, "") << "explicit --auth=none on loopback must log nothing";
  }
  WarningSink sink;
  ASSERT_TRUE(launch::ResolveJobAuth("none", "", {}, 2, true, std::chrono::milliseconds(10)).ok());
  EXPECT_NE(sink.text.find("--auth=none on a job that spans hosts"), std::string::npos) << sink.text;
}

class CurveJobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(wire::CurveAvailable());
    keys_ = *wire::GenerateCurveKeys();
    ctx_ = *wire::Context::Create();
    ASSERT_OK(EnableAuth());
    CoordinatorOptions co;
    co.job_id = kJob;
    co.num_servers = 1;
    co.num_workers = 1;
    auto c = Coordinator::Start(co, ctx_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    coord_ = std::move(c).value();
    paramserver::ServerOptions so;
    so.coordinator = coord_->endpoint();
    so.job_id = kJob;
    so.rank = 1;
    so.num_servers = 1;
    so.num_workers = 1;
    auto s = paramserver::ParamServer::Start(so, ctx_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    worker::ClientOptions wo;
    wo.coordinator = coord_->endpoint();
    wo.job_id = kJob;
    wo.rank = 2;
    wo.num_servers = 1;
    wo.num_workers = 1;
    auto cl = worker::Client::Connect(wo, ctx_);
    ASSERT_TRUE(cl.ok()) << cl.status().ToString();
    client_ = std::move(cl).value();
    ParamSpec w;
    w.name = "w";
    w.shape = {16};
    w.init = InitKind::kConstant;
    w.init_scale = 2.0f;
    w.optimizer.lr = 1;
    ASSERT_OK(client_->DeclareParams({w}));
    server_endpoint_ = client_->shard_map().data().servers[0].endpoint;
  }

  virtual Status EnableAuth() { return ctx_->EnableCurve(keys_); }

  void TearDown() override {
    if (client_) client_->Finish(0, "test done").IgnoreError();
    if (coord_) coord_->Wait(std::chrono::seconds(10));
    if (server_) server_->Wait(std::chrono::seconds(10));
  }

  // A DEALER from `ctx` that asks `endpoint` for something and reports what came back.
  Status Ask(const std::shared_ptr<wire::Context>& ctx, const std::string& endpoint, OutMessage&& m,
             int64_t wait_ms = 1500) {
    wire::SocketOptions o;
    o.stamp_sender = true;
    o.job_id = kJob;
    o.role = wire::Role::WORKER;
    o.rank = 2;
    o.linger_ms = 0;
    auto s = wire::Socket::Create(ctx, wire::SocketType::kDealer, o);
    if (!s.ok()) return s.status();
    TESSERA_RETURN_IF_ERROR((*s)->Connect(endpoint));
    return wire::Call(**s, std::move(m), Deadline::FromMillis(wait_ms)).status();
  }

  static OutMessage Register(int rank) {
    OutMessage reg(Op::REGISTER);
    auto r = reg.header().getBody().initRegister();
    r.setRole(wire::Role::WORKER);
    r.setRank(rank);
    r.setHost("intruder");
    r.setNumServers(1);
    r.setNumWorkers(1);
    return reg;
  }

  void ExpectStillTraining() {
    std::vector<float> g(16, 1.0f), out(16);
    ASSERT_OK(client_->Push(0, TensorView{g.data(), DType::kF32, {16}, Device::kCPU}, 0).Wait(std::chrono::seconds(5)));
    ASSERT_OK(client_->Pull(0, TensorView{out.data(), DType::kF32, {16}, Device::kCPU}, 1).Wait(std::chrono::seconds(5)));
    EXPECT_EQ(out[0], 1.0f);  // 2 - lr * 1
    EXPECT_OK(client_->health());
  }

  wire::CurveKeys keys_;
  std::shared_ptr<wire::Context> ctx_;
  std::unique_ptr<Coordinator> coord_;
  std::unique_ptr<paramserver::ParamServer> server_;
  std::unique_ptr<worker::Client> client_;
  std::string server_endpoint_;
};

// The realistic intruder: it knows the job's public (server) key, which travels in
// clear, but holds another client keypair. The ZAP handler refuses it.
TEST_F(CurveJobTest, PeerWithAnotherClientKeyIsRefusedByZapAndTheJobGoesOn) {
  auto intruder_ctx = *wire::Context::Create();
  const wire::CurveKeys mine = *wire::GenerateCurveKeys();
  const uint64_t before = ctx_->auth_refusals();
  for (const std::string& endpoint : {coord_->endpoint(), server_endpoint_}) {
    void* s = zmq_socket(intruder_ctx->raw(), ZMQ_DEALER);
    ASSERT_NE(s, nullptr);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    ASSERT_EQ(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, keys_.public_z85.c_str(), 41), 0);
    ASSERT_EQ(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, mine.public_z85.c_str(), 41), 0);
    ASSERT_EQ(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, mine.secret_z85.c_str(), 41), 0);
    ASSERT_EQ(zmq_connect(s, endpoint.c_str()), 0);
    zmq_send(s, "hello", 5, ZMQ_DONTWAIT);
    zmq_pollitem_t item{s, 0, ZMQ_POLLIN, 0};
    EXPECT_EQ(zmq_poll(&item, 1, 1000), 0) << "the intruder got an answer from " << endpoint;
    zmq_close(s);
  }
  const Deadline d = Deadline::FromMillis(3000);
  while (ctx_->auth_refusals() < before + 2 && !d.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(ctx_->auth_refusals(), before + 2) << "the ZAP handler refused nobody";
  ExpectStillTraining();
}

// A peer with an entirely different keypair (so also the wrong server key) fails the
// CURVE handshake itself.
TEST_F(CurveJobTest, PeerWithAnotherJobsKeysGetsNoAnswer) {
  auto intruder = *wire::Context::Create();
  ASSERT_OK(intruder->EnableCurve(*wire::GenerateCurveKeys()));
  Status st = Ask(intruder, coord_->endpoint(), Register(2));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  OutMessage pull(Op::PULL);
  st = Ask(intruder, server_endpoint_, std::move(pull));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  ExpectStillTraining();
}

TEST_F(CurveJobTest, PlainTextPeerIsRefusedAndTheJobGoesOn) {
  auto plain = *wire::Context::Create();  // no CURVE: the NULL mechanism
  Status st = Ask(plain, coord_->endpoint(), Register(2));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  ExpectStillTraining();
}

TEST_F(CurveJobTest, AuthenticatedRegistrationWithWrongJobIdOrVersionIsRefusedByName) {
  OutMessage reg = Register(2);
  reg.SetJobId(kJob + 1);
  Status st = Ask(ctx_, coord_->endpoint(), std::move(reg), 5000);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_NE(st.message().find(std::to_string(kJob + 1)), std::string::npos) << st.ToString();

  OutMessage old = Register(2);
  old.header().setProtocolVersion(wire::kProtocolVersion + 7);
  st = Ask(ctx_, coord_->endpoint(), std::move(old), 5000);
  EXPECT_EQ(st.code(), StatusCode::kVersionMismatch) << st.ToString();
  EXPECT_NE(st.message().find("protocol version " + std::to_string(wire::kProtocolVersion + 7)), std::string::npos)
      << st.ToString();
  ExpectStillTraining();
}

// The same job under --auth=mac: training works through authenticated sessions, and
// peers without the job key get no answer while the job goes on.
class MacJobTest : public CurveJobTest {
 protected:
  Status EnableAuth() override { return ctx_->EnableMac(keys_); }
};

TEST_F(MacJobTest, TrainingWorksThroughAuthenticatedSessions) { ExpectStillTraining(); }

TEST_F(MacJobTest, PeerWithAnotherJobsKeyGetsNoAnswer) {
  auto intruder = *wire::Context::Create();
  ASSERT_OK(intruder->EnableMac(*wire::GenerateCurveKeys()));
  Status st = Ask(intruder, coord_->endpoint(), Register(2));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  OutMessage pull(Op::PULL);
  st = Ask(intruder, server_endpoint_, std::move(pull));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  ExpectStillTraining();
}

TEST_F(MacJobTest, PlainTextPeerGetsNoAnswerAndTheJobGoesOn) {
  auto plain = *wire::Context::Create();
  Status st = Ask(plain, coord_->endpoint(), Register(2));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  OutMessage pull(Op::PULL);
  st = Ask(plain, server_endpoint_, std::move(pull));
  EXPECT_EQ(st.code(), StatusCode::kTimedOut) << st.ToString();
  ExpectStillTraining();
}

TEST_F(MacJobTest, AuthenticatedRegistrationWithWrongJobIdIsRefusedByName) {
  OutMessage reg = Register(2);
  reg.SetJobId(kJob + 1);
  Status st = Ask(ctx_, coord_->endpoint(), std::move(reg), 5000);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.code(), StatusCode::kTimedOut) << st.ToString();
  EXPECT_NE(st.message().find(std::to_string(kJob + 1)), std::string::npos) << st.ToString();
  ExpectStillTraining();
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

std::string LaunchSteps(const std::string& extra) {
  return testing::TesseraBinary() + " launch --servers 1 --workers 2 --program " + testing::BinaryDir() +
         "/tests/ps/ps_peer --subcommand= --grace_s 5 -- --scenario=steps --steps=3 " + extra;
}

// `tessera launch` makes a private key for the job, every process uses it, and it is
// gone when the job ends.
TEST(LaunchedJobAuth, MacByDefaultWithAPrivateKeyRemovedAtTheEnd) {
  testing::TempDir dir;
  // While the job runs, record the key file's mode and the job directory's.
  auto r = testing::RunCommand("TMPDIR=" + dir.path() + " " + LaunchSteps("--slow_worker=0 --slow_ms=300 --out_dir=" + dir.path()) +
                                   " > " + dir.path() + "/out 2>&1 & L=$!; "
                                   "for i in $(seq 100); do ls " + dir.path() + "/tessera-job-*/job.key >/dev/null 2>&1 && break; sleep 0.05; done; "
                                   "stat -c \"mode %a\" " + dir.path() + "/tessera-job-*/job.key " + dir.path() + "/tessera-job-*; "
                                   "wait $L; echo rc=$?; ls -d " + dir.path() + "/tessera-job-* 2>&1; cat " + dir.path() + "/out",
                               60);
  EXPECT_NE(r.output.find("rc=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("mode 600\nmode 700"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("No such file"), std::string::npos) << "job directory left behind\n" << r.output;
  // All 4 processes (coordinator, server, 2 workers) turned --auth=mac on.
  size_t n = 0;
  for (size_t p = 0; (p = r.output.find("auth=mac: every message authenticated", p)) != std::string::npos; ++p) ++n;
  EXPECT_EQ(n, 4u) << r.output;
  EXPECT_EQ(r.output.find("CURVE authentication and encryption on"), std::string::npos) << r.output;
}

TEST(LaunchedJobAuth, CurveOnRequest) {
  testing::TempDir dir;
  auto r = testing::RunCommand(LaunchSteps("--auth=curve --out_dir=" + dir.path()), 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  size_t n = 0;
  for (size_t p = 0; (p = r.output.find("CURVE authentication and encryption on", p)) != std::string::npos; ++p) ++n;
  EXPECT_EQ(n, 4u) << r.output;
}

// On one host, an explicit --auth=none is the user's informed choice: no warning. (A job
// that spans hosts warns on every process: JobAuth.NoneWarnsOnlyAcrossHosts.)
TEST(LaunchedJobAuth, NoneOnLoopbackIsSilent) {
  testing::TempDir dir;
  auto r = testing::RunCommand(LaunchSteps("--auth=none --out_dir=" + dir.path()), 60);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("neither authenticated nor encrypted"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("auth=mac: every message authenticated"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("CURVE authentication and encryption on"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera
