// The steps of DetectLaunchEnv one by one (launch/env_detect.h); the whole detection,
// recorded environments included, is tests/launch/env_test.cc.
#include "launch/env_detect.h"

#include <gtest/gtest.h>

namespace tessera::launch::detect {
namespace {

TEST(DetectMpiWorld, OpenMpiGivesTheWorldAndRank) {
  LaunchInfo li;
  ASSERT_TRUE(MpiWorld({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "2"}}, &li).ok());
  EXPECT_EQ(li.mpi_world_size, 4);
  EXPECT_EQ(li.mpi_rank, 2);
}

TEST(DetectMpiWorld, PmiGivesTheWorldRankAndFd) {
  LaunchInfo li;
  ASSERT_TRUE(MpiWorld({{"PMI_SIZE", "3"}, {"PMI_RANK", "1"}, {"PMI_FD", "7"}}, &li).ok());
  EXPECT_EQ(li.mpi_world_size, 3);
  EXPECT_EQ(li.mpi_rank, 1);
  EXPECT_EQ(li.pmi_fd, 7);
}

TEST(DetectMpiWorld, NoMpiLeavesItEmpty) {
  LaunchInfo li;
  ASSERT_TRUE(MpiWorld({{"SLURM_PROCID", "0"}}, &li).ok());
  EXPECT_EQ(li.mpi_world_size, 0);
}

TEST(DetectRank, RankBaseAddsTheMpiRank) {
  LaunchInfo li;
  li.mpi_world_size = 2;
  li.mpi_rank = 1;
  ASSERT_TRUE(Rank({{"TESSERA_RANK_BASE", "3"}, {"TESSERA_WORLD_SIZE", "5"}}, &li).ok());
  EXPECT_EQ(li.source, "tessera-launch");
  EXPECT_EQ(li.rank, 4);
  EXPECT_EQ(li.local_rank, 4);
}

TEST(DetectRank, RankBaseOutsideMpiIsRefused) {
  LaunchInfo li;
  Status st = Rank({{"TESSERA_RANK_BASE", "3"}, {"TESSERA_WORLD_SIZE", "5"}}, &li);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
}

TEST(DetectRank, MpichTakesTheLocalRankFromHydra) {
  LaunchInfo li;
  ASSERT_TRUE(Rank({{"PMI_RANK", "1"}, {"PMI_SIZE", "2"}, {"MPI_LOCALRANKID", "1"}}, &li).ok());
  EXPECT_EQ(li.source, "mpich");
  EXPECT_EQ(li.local_rank, 1);
}

TEST(DetectRank, RankOutsideTheWorldIsRefused) {
  LaunchInfo li;
  EXPECT_FALSE(Rank({{"RANK", "4"}, {"WORLD_SIZE", "4"}}, &li).ok());
}

TEST(DetectRank, NoLauncherIsASingleProcess) {
  LaunchInfo li;
  ASSERT_TRUE(Rank({}, &li).ok());
  EXPECT_EQ(li.source, "single");
  EXPECT_EQ(li.world_size, 1);
}

TEST(DetectPmixRank, DisagreeingRankIsRefusedForOpenMpi) {
  LaunchInfo li;
  li.source = "openmpi";
  li.rank = 2;
  EXPECT_FALSE(PmixRankAgrees({{"PMIX_RANK", "3"}}, li).ok());
  EXPECT_TRUE(PmixRankAgrees({{"PMIX_RANK", "2"}}, li).ok());
}

TEST(DetectPmixRank, IgnoredForOtherLaunchers) {
  LaunchInfo li;
  li.source = "torchrun";
  li.rank = 2;
  EXPECT_TRUE(PmixRankAgrees({{"PMIX_RANK", "3"}}, li).ok());
}

TEST(DetectRankVariables, NamesEachSource) {
  EXPECT_EQ(RankVariables("slurm"), "SLURM_PROCID/SLURM_NTASKS");
  EXPECT_EQ(RankVariables("single"), "no launcher variables");
}

TEST(DetectCoordinatorHost, ExplicitRemoteHostSpansHosts) {
  LaunchInfo li;
  li.source = "torchrun";
  auto from = CoordinatorHost({{"MASTER_ADDR", "10.1.2.3"}}, &li);
  ASSERT_TRUE(from.ok()) << from.status().ToString();
  EXPECT_EQ(*from, "MASTER_ADDR");
  EXPECT_EQ(li.coordinator_host, "10.1.2.3");
  EXPECT_TRUE(li.coordinator_host_explicit);
  EXPECT_TRUE(li.spans_hosts);
  EXPECT_EQ(li.spans_from, "MASTER_ADDR is not loopback");
}

TEST(DetectCoordinatorHost, SlurmStepListBeatsTheJobList) {
  LaunchInfo li;
  li.source = "slurm";
  auto from = CoordinatorHost({{"SLURM_STEP_NODELIST", "n[3-4]"}, {"SLURM_JOB_NODELIST", "n[1-4]"}}, &li);
  ASSERT_TRUE(from.ok()) << from.status().ToString();
  EXPECT_EQ(*from, "first host of SLURM_STEP_NODELIST");
  EXPECT_EQ(li.coordinator_host, "n3");
  EXPECT_FALSE(li.coordinator_host_explicit);
}

TEST(DetectCoordinatorHost, TesseraLaunchWithoutHostStaysOnLoopback) {
  LaunchInfo li;
  li.source = "tessera-launch";
  auto from = CoordinatorHost({{"SLURM_JOB_NODELIST", "n[1-4]"}}, &li);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, "default 127.0.0.1");
}

TEST(DetectCoordinatorPort, ExplicitPortWins) {
  LaunchInfo li;
  li.slurm_job_id = "77";
  auto from = CoordinatorPort({{"TESSERA_COORDINATOR_PORT", "5555"}}, &li);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, "TESSERA_COORDINATOR_PORT");
  EXPECT_EQ(li.coordinator_port, 5555);
}

TEST(DetectCoordinatorPort, SlurmStepsGetDifferentDerivedPorts) {
  LaunchInfo a, b;
  a.slurm_job_id = b.slurm_job_id = "77";
  ASSERT_TRUE(CoordinatorPort({{"SLURM_STEP_ID", "0"}}, &a).ok());
  auto from = CoordinatorPort({{"SLURM_STEP_ID", "1"}}, &b);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, "derived from SLURM_JOB_ID and SLURM_STEP_ID");
  EXPECT_NE(a.coordinator_port, b.coordinator_port);
  EXPECT_GE(a.coordinator_port, 20000);
  EXPECT_LT(a.coordinator_port, 32000) << "inside the ephemeral port range";
}

TEST(DetectCoordinatorPort, NoneWithoutAJobId) {
  LaunchInfo li;
  auto from = CoordinatorPort({}, &li);
  ASSERT_TRUE(from.ok());
  EXPECT_EQ(*from, "none");
  EXPECT_EQ(li.coordinator_port, 0);
}

TEST(DetectJobId, ExplicitNumberIsTaken) {
  LaunchInfo li;
  ASSERT_TRUE(JobId({{"TESSERA_JOB_ID", "123"}}, &li).ok());
  EXPECT_EQ(li.job_id, 123u);
}

TEST(DetectJobId, NonNumberIsRefused) {
  LaunchInfo li;
  EXPECT_FALSE(JobId({{"TESSERA_JOB_ID", "12x"}}, &li).ok());
}

TEST(DetectJobId, OpenMpiJobsDeriveTheSameIdOnEveryRank) {
  LaunchInfo a, b;
  a.source = b.source = "openmpi";
  ASSERT_TRUE(JobId({{"OMPI_MCA_ess_base_jobid", "991"}}, &a).ok());
  ASSERT_TRUE(JobId({{"OMPI_MCA_ess_base_jobid", "991"}}, &b).ok());
  EXPECT_NE(a.job_id, 0u);
  EXPECT_EQ(a.job_id, b.job_id);
}

}  // namespace
}  // namespace tessera::launch::detect
