#include "launch/env.h"

#include <gtest/gtest.h>

namespace tessera::launch {
namespace {

TEST(LaunchEnv, NoLauncherMeansSingleProcess) {
  auto li = DetectLaunchEnv({});
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "single");
  EXPECT_EQ(li->rank, 0);
  EXPECT_EQ(li->world_size, 1);
}

TEST(LaunchEnv, OpenMpiRecorded) {
  // Recorded from `mpirun -np 5` on this machine type.
  EnvMap env = {{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "5"},
                {"OMPI_COMM_WORLD_LOCAL_RANK", "3"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "5"},
                {"PMIX_RANK", "3"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "openmpi");
  EXPECT_EQ(li->rank, 3);
  EXPECT_EQ(li->world_size, 5);
  EXPECT_EQ(li->local_rank, 3);
}

TEST(LaunchEnv, SlurmTakesFirstHostAndDerivesPortFromJobId) {
  EnvMap env = {{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "0"},
                {"SLURM_JOB_ID", "4242"}, {"SLURM_RESTART_COUNT", "1"},
                {"SLURM_JOB_NODELIST", "node[01-04,07],gpu5"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "slurm");
  EXPECT_EQ(li->rank, 2);
  EXPECT_EQ(li->world_size, 8);
  EXPECT_EQ(li->coordinator_host, "node01");
  EXPECT_EQ(li->slurm_job_id, "4242");
  EXPECT_EQ(li->slurm_restart_count, 1);
  EXPECT_GE(li->coordinator_port, 20000);
  EXPECT_LT(li->coordinator_port, 40000);
  env["SLURM_JOB_ID"] = "4243";
  auto other = DetectLaunchEnv(env);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->coordinator_port, li->coordinator_port) << "two jobs on one node collide";
}

TEST(LaunchEnv, MpirunInsideSlurmPrefersOpenMpiRanks) {
  EnvMap env = {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_JOB_ID", "7"},
                {"SLURM_JOB_NODELIST", "c[5-6]"}, {"OMPI_COMM_WORLD_RANK", "1"},
                {"OMPI_COMM_WORLD_SIZE", "4"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "openmpi");
  EXPECT_EQ(li->rank, 1);
  EXPECT_EQ(li->world_size, 4);
  EXPECT_EQ(li->coordinator_host, "c5");
}

TEST(LaunchEnv, TesseraLaunchWins) {
  EnvMap env = {{"TESSERA_RANK", "2"}, {"TESSERA_WORLD_SIZE", "5"},
                {"TESSERA_COORDINATOR_HOST", "127.0.0.1"}, {"TESSERA_COORDINATOR_PORT", "5555"},
                {"TESSERA_JOB_ID", "99"}, {"OMPI_COMM_WORLD_RANK", "0"}, {"OMPI_COMM_WORLD_SIZE", "1"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "tessera-launch");
  EXPECT_EQ(li->rank, 2);
  EXPECT_EQ(li->coordinator_port, 5555);
  EXPECT_EQ(li->job_id, 99u);
}

TEST(LaunchEnv, TorchrunNames) {
  EnvMap env = {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "1"},
                {"MASTER_ADDR", "10.1.2.3"}, {"MASTER_PORT", "29500"}};
  auto li = DetectLaunchEnv(env);
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->source, "torchrun");
  EXPECT_EQ(li->coordinator_host, "10.1.2.3");
  EXPECT_EQ(li->coordinator_port, 29500);
}

TEST(LaunchEnv, BadValuesAreNamed) {
  auto li = DetectLaunchEnv({{"OMPI_COMM_WORLD_RANK", "x1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  ASSERT_FALSE(li.ok());
  EXPECT_NE(li.status().message().find("OMPI_COMM_WORLD_RANK='x1'"), std::string::npos);
  auto out = DetectLaunchEnv({{"SLURM_PROCID", "4"}, {"SLURM_NTASKS", "4"}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("outside world size"), std::string::npos);
}

TEST(SlurmNodeList, Expansion) {
  EXPECT_EQ(*FirstSlurmHost("node[01-04,07]"), "node01");
  EXPECT_EQ(*FirstSlurmHost("a1,b[2-3]"), "a1");
  EXPECT_EQ(*FirstSlurmHost("gpu[7,9]-ib"), "gpu7-ib");
  EXPECT_EQ(*FirstSlurmHost("localhost"), "localhost");
  EXPECT_FALSE(FirstSlurmHost("node[01-04").ok());
  EXPECT_FALSE(FirstSlurmHost("").ok());
}

}  // namespace
}  // namespace tessera::launch
