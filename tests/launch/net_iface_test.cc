// Interface choice, address plans and the job-record agreement check: pure functions,
// tested on recorded interface tables.
#include "launch/net_iface.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "launch/job_network.h"
#include "launch/job_record.h"

namespace tessera::launch {
namespace {

std::vector<NetInterface> Table() {
  return {{"lo", "127.0.0.1", 8, true, true},
          {"eth0", "10.77.0.2", 24, true, false},
          {"docker0", "172.17.0.1", 16, true, false},
          {"eth1", "192.168.5.9", 24, false, false},  // down
          {"ib0", "10.20.0.2", 16, true, false}};
}

TEST(ChooseInterface, DefaultPrefersInfinibandAndSkipsLoopbackVirtualAndDown) {
  auto i = ChooseInterface(Table(), "");
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->name, "ib0");
  auto no_ib = Table();
  no_ib.pop_back();
  EXPECT_EQ(ChooseInterface(no_ib, "")->name, "eth0");
}

TEST(ChooseInterface, SpecByPrefixExactExclusionAndNetwork) {
  EXPECT_EQ(ChooseInterface(Table(), "eth")->name, "eth0");
  EXPECT_EQ(ChooseInterface(Table(), "=eth0")->name, "eth0");
  EXPECT_EQ(ChooseInterface(Table(), "^ib")->name, "eth0");
  EXPECT_EQ(ChooseInterface(Table(), "10.77.0.0/16")->name, "eth0");
  EXPECT_EQ(ChooseInterface(Table(), "10.20.0.0/24")->name, "ib0");
  EXPECT_EQ(ChooseInterface(Table(), "lo")->name, "lo") << "an explicit loopback choice is the user's";
  EXPECT_FALSE(ChooseInterface(Table(), "=eth").ok()) << "exact means exact";
}

TEST(ChooseInterface, NothingUsableNamesEveryInterfaceSeen) {
  auto i = ChooseInterface(Table(), "eth1");
  ASSERT_FALSE(i.ok());
  EXPECT_NE(i.status().message().find("eth1"), std::string::npos);
  EXPECT_NE(i.status().message().find("eth1 192.168.5.9/24 down"), std::string::npos) << i.status().ToString();
  EXPECT_NE(i.status().message().find("lo 127.0.0.1/8 up"), std::string::npos);
  auto only_lo = ChooseInterface({{"lo", "127.0.0.1", 8, true, true}}, "");
  ASSERT_FALSE(only_lo.ok());
  EXPECT_NE(only_lo.status().message().find("no usable network interface"), std::string::npos);
  EXPECT_FALSE(ChooseInterface(Table(), "10.0.0.0/33").ok());
  EXPECT_FALSE(ChooseInterface(Table(), "^").ok());
}

TEST(PlanAddresses, OneHostListensOnLoopback) {
  auto p = PlanAddresses(Table(), {}, false);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->bind_host, "127.0.0.1");
  EXPECT_EQ(p->advertise_host, "127.0.0.1");
}

TEST(PlanAddresses, SpanningHostsBindsAndAdvertisesTheInterfaceNeverAWildcard) {
  auto p = PlanAddresses(Table(), {"", "eth", ""}, true);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->bind_host, "10.77.0.2");
  EXPECT_EQ(p->advertise_host, "10.77.0.2");
  auto wild = PlanAddresses(Table(), {"0.0.0.0", "eth", ""}, true);
  ASSERT_TRUE(wild.ok());
  EXPECT_EQ(wild->bind_host, "0.0.0.0");
  EXPECT_EQ(wild->advertise_host, "10.77.0.2") << "0.0.0.0 must never be advertised";
  auto adv = PlanAddresses(Table(), {"0.0.0.0", "", "relay.example"}, true);
  ASSERT_TRUE(adv.ok());
  EXPECT_EQ(adv->advertise_host, "relay.example");
}

TEST(PlanAddresses, LoopbackBindInAJobAcrossHostsIsRefused) {
  auto p = PlanAddresses(Table(), {"127.0.0.1", "", ""}, true);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("spans hosts"), std::string::npos) << p.status().ToString();
  auto none = PlanAddresses({{"lo", "127.0.0.1", 8, true, true}}, {}, true);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("interfaces seen: lo 127.0.0.1/8 up"), std::string::npos);
}

TEST(ListInterfaces, SeesLoopback) {
  auto ifs = ListInterfaces();
  ASSERT_TRUE(ifs.ok()) << ifs.status().ToString();
  bool lo = false;
  for (const auto& i : *ifs) lo |= i.loopback && i.address == "127.0.0.1";
  EXPECT_TRUE(lo) << DescribeInterfaces(*ifs);
}

LaunchInfo MpiRank(int rank, bool spans) {
  LaunchInfo li;
  li.source = "openmpi";
  li.rank = rank;
  li.world_size = 5;
  li.mpi_world_size = 5;
  li.mpi_rank = rank;
  li.coordinator_port = 31000;
  li.spans_hosts = spans;
  li.spans_from = spans ? "OMPI_COMM_WORLD_LOCAL_SIZE < OMPI_COMM_WORLD_SIZE" : "";
  return li;
}

TEST(PlanNetwork, MpirunPublishesThroughMpiOnAnyFreePort) {
  auto p = PlanNetwork(MpiRank(0, true), {}, Table());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->mpi_rendezvous);
  EXPECT_EQ(p->coordinator_port, 0) << "the derived port may be taken; rank 0 binds any and publishes it";
  EXPECT_EQ(AdvertisedEndpoint("tcp://0.0.0.0:4711", p->addresses.advertise_host), "tcp://10.20.0.2:4711");
  // Two candidate interfaces and nothing named: rank 0 listens on both and publishes both,
  // the default choice first (the others connect to the first they reach).
  EXPECT_EQ(p->coordinator_bind, "0.0.0.0");
  EXPECT_EQ(p->coordinator_candidates, (std::vector<std::string>{"10.20.0.2", "10.77.0.2"}));
  NetworkFlags named;
  named.addresses.interface_spec = "eth";
  auto q = PlanNetwork(MpiRank(0, true), named, Table());
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->coordinator_bind, "10.77.0.2") << "the user named the interface: only it";
  EXPECT_TRUE(q->coordinator_candidates.empty());
  auto one = PlanNetwork(MpiRank(0, true), {}, {{"lo", "127.0.0.1", 8, true, true}, {"eth0", "10.77.0.2", 24, true, false}});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->coordinator_bind, "10.77.0.2") << "one candidate: nothing to choose";
  EXPECT_TRUE(one->coordinator_candidates.empty());
}

TEST(DefaultCandidateAddresses, TheChosenFirstThenEveryUsableInterfaceOnce) {
  EXPECT_EQ(DefaultCandidateAddresses(Table(), "10.20.0.2"), (std::vector<std::string>{"10.20.0.2", "10.77.0.2"}))
      << "not loopback, docker0 or the interface that is down";
  EXPECT_EQ(DefaultCandidateAddresses(Table(), "10.77.0.2"), (std::vector<std::string>{"10.77.0.2", "10.20.0.2"}));
}

TEST(PlanNetwork, AnExplicitHostSkipsTheMpiRendezvous) {
  NetworkFlags f;
  f.coordinator_host = "10.77.0.1";
  auto p = PlanNetwork(MpiRank(2, false), f, Table());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_FALSE(p->mpi_rendezvous);
  EXPECT_TRUE(p->spans_hosts) << "a non-loopback coordinator is on another host";
  EXPECT_EQ(p->coordinator_endpoint, "tcp://10.77.0.1:31000");
  EXPECT_EQ(p->addresses.advertise_host, "10.20.0.2");
}

TEST(PlanNetwork, SlurmRankZeroListensWhereItsNodeNameResolves) {
  LaunchInfo li;
  li.source = "slurm";
  li.world_size = 5;
  li.coordinator_host = "10.77.0.2";  // what peers resolve the step's first node to
  li.coordinator_port = 25000;
  li.spans_hosts = true;
  auto p = PlanNetwork(li, {}, Table());
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->coordinator_bind, "10.77.0.2");
  li.coordinator_host = "10.99.0.9";  // not ours: listen everywhere
  EXPECT_EQ(PlanNetwork(li, {}, Table())->coordinator_bind, "0.0.0.0");
  li.coordinator_port = 0;
  EXPECT_FALSE(PlanNetwork(li, {}, Table()).ok());
}

TEST(PlanNetwork, ACoordinatorOnLoopbackInAJobAcrossHostsIsRefusedAtOnce) {
  LaunchInfo li;  // torchrun-style variables on 2 hosts, no MASTER_ADDR
  li.source = "torchrun";
  li.world_size = 3;
  li.coordinator_port = 29500;
  li.spans_hosts = true;
  li.spans_from = "LOCAL_WORLD_SIZE < WORLD_SIZE";
  auto p = PlanNetwork(li, {}, Table());
  ASSERT_FALSE(p.ok()) << "ranks on other hosts would wait for 127.0.0.1 until the registration timeout";
  EXPECT_NE(p.status().message().find("this job spans hosts (LOCAL_WORLD_SIZE < WORLD_SIZE), but the coordinator host "
                                      "is 127.0.0.1 (the default: no --coordinator_host, MASTER_ADDR"),
            std::string::npos)
      << p.status().ToString();
  li.coordinator_host = "tn1";
  EXPECT_TRUE(PlanNetwork(li, {}, Table()).ok());
  EXPECT_TRUE(PlanNetwork(MpiRank(1, true), {}, Table()).ok()) << "mpirun publishes rank 0's address itself";
}

TEST(FollowCoordinatorRoute, ADefaultChoiceMovesToTheInterfaceOfTheRouteToTheCoordinator) {
  auto p = PlanAddresses(Table(), {}, true);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->bind_host, "10.20.0.2") << "the default: InfiniBand first";
  EXPECT_TRUE(FollowCoordinatorRoute(Table(), {}, "10.77.0.1", "10.77.0.2", &*p));
  EXPECT_EQ(p->bind_host, "10.77.0.2");
  EXPECT_EQ(p->advertise_host, "10.77.0.2");
  EXPECT_NE(p->reason.find("eth0 (default choice: this host's route to the coordinator 10.77.0.1, not the first "
                           "interface up, ib0 10.20.0.2)"),
            std::string::npos)
      << p->reason;
  auto named = PlanAddresses(Table(), {"", "ib", ""}, true);
  EXPECT_FALSE(FollowCoordinatorRoute(Table(), {"", "ib", ""}, "10.77.0.1", "10.77.0.2", &*named)) << "the user chose";
  EXPECT_EQ(named->bind_host, "10.20.0.2");
  auto q = PlanAddresses(Table(), {}, true);
  EXPECT_FALSE(FollowCoordinatorRoute(Table(), {}, "h", "192.168.5.9", &*q)) << "eth1 is down";
  EXPECT_FALSE(FollowCoordinatorRoute(Table(), {}, "h", "127.0.0.1", &*q)) << "never loopback";
  EXPECT_EQ(q->bind_host, "10.20.0.2");
}

TEST(ChooseInterface, AMissingNameSuggestsTheNetworkHostsShare) {
  auto i = ChooseInterface(Table(), "ens2f0");
  ASSERT_FALSE(i.ok());
  EXPECT_NE(i.status().message().find("name the network they share instead, e.g. --interface=10.77.0.0/24 for eth0's"),
            std::string::npos)
      << i.status().ToString();
}

TEST(ProbeTcp, TellsAListeningPortFromARefusedOne) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  // Bound but not listening: the kernel refuses connections to it.
  EXPECT_EQ(ProbeTcp("127.0.0.1", port, std::chrono::seconds(2)).kind, TcpProbe::kRefused);
  ASSERT_EQ(::listen(fd, 4), 0);
  TcpProbe ok = ProbeTcp("localhost", port, std::chrono::seconds(2));
  EXPECT_EQ(ok.kind, TcpProbe::kAccepted) << ok.error;
  EXPECT_EQ(ok.where, "localhost:" + std::to_string(port) + " (127.0.0.1)");
  ::close(fd);
  EXPECT_EQ(ProbeTcp("no-such-host.invalid", port, std::chrono::seconds(2)).kind, TcpProbe::kUnresolved);
}

TEST(FirstReachableEndpoint, SkipsAnAddressThatRefusesForOneThatAccepts) {
  const int closed = ::socket(AF_INET, SOCK_STREAM, 0);
  const int open = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(closed, 0);
  ASSERT_GE(open, 0);
  int ports[2];
  for (int k = 0; k < 2; ++k) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    const int fd = k == 0 ? closed : open;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    ports[k] = ntohs(a.sin_port);
  }
  ASSERT_EQ(::listen(open, 4), 0);
  const std::string refused = "tcp://127.0.0.1:" + std::to_string(ports[0]);
  const std::string accepts = "tcp://127.0.0.1:" + std::to_string(ports[1]);
  std::string why;
  EXPECT_EQ(FirstReachableEndpoint(refused + "," + accepts, std::chrono::seconds(2), &why), accepts);
  EXPECT_NE(why.find("127.0.0.1:" + std::to_string(ports[0]) + ": Connection refused"), std::string::npos) << why;
  EXPECT_EQ(FirstReachableEndpoint(accepts + "," + refused, std::chrono::seconds(2), &why), accepts);
  ::close(open);
  EXPECT_EQ(FirstReachableEndpoint(refused + "," + accepts, std::chrono::seconds(2), &why), refused)
      << "none reached: the first, whose registration error then says why";
  EXPECT_NE(why.find("none reached"), std::string::npos) << why;
  why = "untouched";
  EXPECT_EQ(FirstReachableEndpoint(accepts, std::chrono::seconds(2), &why), accepts) << "one endpoint: not probed";
  EXPECT_EQ(why, "untouched");
  ::close(closed);
}

JobRecord Rec(int rank, const std::string& host) {
  return {rank, host, 42, 3, 1, 1, "bsp", "abcd", rank == 0 ? "tcp://10.77.0.1:5000" : ""};
}

TEST(JobRecord, RoundTripsAndRefusesATruncatedRecord) {
  JobRecord r = Rec(0, "tn1");
  auto back = DecodeJobRecord(EncodeJobRecord(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->host, "tn1");
  EXPECT_EQ(back->job_id, 42u);
  EXPECT_EQ(back->coordinator, "tcp://10.77.0.1:5000");
  EXPECT_FALSE(DecodeJobRecord("rank=0\nhost=a\n").ok());
  EXPECT_FALSE(DecodeJobRecord("rank=zero\n").ok());
}

TEST(JobRecord, AgreementNamesEachRankThatDisagreesWithItsHost) {
  std::vector<JobRecord> all = {Rec(0, "tn1"), Rec(1, "tn2"), Rec(2, "tn3")};
  EXPECT_TRUE(CheckJobAgreement(all).ok());
  all[2].servers = 2;
  all[2].key_fingerprint = "ffff";
  Status st = CheckJobAgreement(all);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("rank 2 on tn3: --servers 2 vs rank 0's 1, job key ffff vs rank 0's abcd"), std::string::npos)
      << st.ToString();
  EXPECT_EQ(st.message().find("rank 1 on"), std::string::npos) << st.ToString();
  all = {Rec(0, "tn1"), Rec(1, "tn2")};
  all[0].coordinator.clear();
  EXPECT_FALSE(CheckJobAgreement(all).ok()) << "rank 0 must publish an endpoint";
}

}  // namespace
}  // namespace tessera::launch

#include "launch/job_shape.h"

namespace tessera::launch {
namespace {

TEST(JobShape, DerivedCountsAndEveryRefusal) {
  auto s = ResolveJobShape(5, 0, 0);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->servers, 2);
  EXPECT_EQ(s->workers, 2);
  EXPECT_EQ(ResolveJobShape(9, 4, 0)->workers, 4);
  EXPECT_EQ(ResolveJobShape(3, 0, 0)->servers, 1);
  auto alone = ResolveJobShape(1, 0, 0);
  ASSERT_FALSE(alone.ok());
  EXPECT_NE(alone.status().message().find("alone"), std::string::npos);
  auto sum = ResolveJobShape(5, 2, 3);
  ASSERT_FALSE(sum.ok());
  EXPECT_NE(sum.status().message().find("started 5 processes, but 1 coordinator + 2 servers + 3 workers need 6"),
            std::string::npos)
      << sum.status().ToString();
  EXPECT_FALSE(ResolveJobShape(5, -1, 0).ok());
  EXPECT_FALSE(ResolveJobShape(3, 2, 0).ok()) << "no worker left";
}

}  // namespace
}  // namespace tessera::launch

namespace tessera::launch {
namespace {

// --server_threads=0 (auto): the helper only where every server and worker of the job is
// on this host with a CPU each (1x1 on 2 CPUs: yes; 2x2 on 2: no; across hosts: no).
TEST(JobShape, AutoServerThreadsTakeTheHelperOnlyWhenEveryProcessHasACpu) {
  const JobShape one{1, 1}, two{2, 2};
  EXPECT_EQ(*ResolveServerThreads(0, one, /*spans_hosts=*/false, 2), 2);
  EXPECT_EQ(*ResolveServerThreads(0, one, false, 3), 2);
  EXPECT_EQ(*ResolveServerThreads(0, one, false, 1), 1);
  EXPECT_EQ(*ResolveServerThreads(0, two, false, 2), 1);
  EXPECT_EQ(*ResolveServerThreads(0, two, false, 3), 1);
  EXPECT_EQ(*ResolveServerThreads(0, two, false, 4), 2);
  EXPECT_EQ(*ResolveServerThreads(0, one, /*spans_hosts=*/true, 64), 1);
  // Given values are kept, whatever the host.
  EXPECT_EQ(*ResolveServerThreads(1, one, false, 64), 1);
  EXPECT_EQ(*ResolveServerThreads(2, two, true, 1), 2);
  for (const int bad : {-1, 3}) {
    auto r = ResolveServerThreads(bad, one, false, 2);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("1 or 2"), std::string::npos) << r.status().ToString();
  }
}

}  // namespace
}  // namespace tessera::launch
