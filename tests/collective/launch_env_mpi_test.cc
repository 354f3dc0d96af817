// How a process learns it is in an MPI world, and the rank of a worker that
// `tessera launch --sync=allreduce` starts under its workers' mpirun (launch/env.h).
#include <gtest/gtest.h>

#include "launch/env.h"

namespace tessera::launch {
namespace {

TEST(LaunchEnvMpi, OpenMpiWorldIsReportedWhateverTheSource) {
  auto li = DetectLaunchEnv({{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "4"}});
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->mpi_world_size, 4);
  EXPECT_EQ(li->mpi_rank, 3);
  auto t = DetectLaunchEnv({{"TESSERA_RANK", "1"}, {"TESSERA_WORLD_SIZE", "3"}});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->mpi_world_size, 0) << "a process started by tessera launch alone is not in an MPI world";
}

TEST(LaunchEnvMpi, RankBaseAddsTheMpiRank) {
  auto li = DetectLaunchEnv({{"TESSERA_RANK_BASE", "3"},
                             {"TESSERA_WORLD_SIZE", "5"},
                             {"TESSERA_COORDINATOR_PORT", "29000"},
                             {"OMPI_COMM_WORLD_RANK", "1"},
                             {"OMPI_COMM_WORLD_SIZE", "2"}});
  ASSERT_TRUE(li.ok()) << li.status().ToString();
  EXPECT_EQ(li->rank, 4);
  EXPECT_EQ(li->world_size, 5);
  EXPECT_EQ(li->source, "tessera-launch");
  EXPECT_EQ(li->coordinator_port, 29000);
  EXPECT_EQ(li->mpi_world_size, 2);
}

TEST(LaunchEnvMpi, RankBaseOutsideMpirunIsAnError) {
  auto li = DetectLaunchEnv({{"TESSERA_RANK_BASE", "3"}, {"TESSERA_WORLD_SIZE", "5"}});
  ASSERT_FALSE(li.ok());
  EXPECT_NE(li.status().message().find("TESSERA_RANK_BASE is set but this process was not started by mpirun"),
            std::string::npos);
  auto bad = DetectLaunchEnv({{"TESSERA_RANK_BASE", "4"}, {"TESSERA_WORLD_SIZE", "5"},
                              {"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"}});
  ASSERT_FALSE(bad.ok()) << "rank 5 is outside a world of 5";
}

}  // namespace
}  // namespace tessera::launch
