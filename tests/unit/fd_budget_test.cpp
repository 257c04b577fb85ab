// SPDX-License-Identifier: MIT
// The descriptor plan (issue 14.5): what a worker may hold never exceeds its share.
#include "core/fd_budget.hpp"

#include <gtest/gtest.h>

namespace trafficcop::detail {
namespace {

/// Descriptors a worker may use at its budget: two per connection, two per pipe, the spare
/// and the one being shed.
std::uint64_t worst_case(const fd_plan& p) { return 2 * p.connections + 2 * p.splice_pipes + 2; }

TEST(FdPlan, StaysWithinTheLimitWithItsReserve) {
  for (std::uint64_t nofile : {256u, 1024u, 2048u, 65536u, 1u << 20}) {
    for (unsigned workers : {1u, 2u, 16u}) {
      auto p = plan_descriptors(nofile, workers, 2);
      SCOPED_TRACE(testing::Message() << nofile << " descriptors, " << workers << " workers");
      EXPECT_GE(p.connections, 1u);
      if (nofile >= 1024) {
        // What listeners, event loops and logs need stays free, and a sixteenth more.
        EXPECT_LE(workers * worst_case(p), nofile - 64 - nofile / 16);
      }
    }
  }
}

TEST(FdPlan, IssueExample) {
  // #14.5: `ulimit -n 2048` with two workers accepted until EMFILE; the plan stops each
  // worker well before, at about a quarter of the limit's connections.
  auto p = plan_descriptors(2048, 2, 1);
  EXPECT_GT(p.connections, 300u);
  EXPECT_LT(2 * p.connections, 1024u);
  EXPECT_GT(p.splice_pipes, 0u);
  EXPECT_LT(p.splice_pipes, p.connections);
}

TEST(FdPlan, PipesAreBoundedWhateverTheLimit) {
  EXPECT_EQ(plan_descriptors(1u << 20, 2, 1).splice_pipes, 64u);
  EXPECT_GT(plan_descriptors(1u << 20, 2, 1).connections, 100000u);
}

TEST(FdPlan, TinyLimitStillServes) {
  EXPECT_EQ(plan_descriptors(16, 4, 1).connections, 1u);
  EXPECT_EQ(plan_descriptors(16, 4, 1).splice_pipes, 0u);
}

TEST(FdLimit, RaisesSoftToHard) {
  auto r = raise_nofile_limit();
  EXPECT_GE(r.now, r.before);
  EXPECT_GT(r.now, 0u);
}

TEST(FdLog, OnceASecond) {
  // The first call of the run logs; calls within the next second are counted, not logged.
  note_out_of_descriptors("test");
  int logged = 0;
  for (int i = 0; i < 1000; ++i) logged += note_out_of_descriptors("test");
  EXPECT_EQ(logged, 0);
}

}  // namespace
}  // namespace trafficcop::detail
