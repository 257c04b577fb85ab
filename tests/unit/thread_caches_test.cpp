// SPDX-License-Identifier: MIT
// The per-thread caches are trimmed together after a burst (issue 14.6).
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "core/buffer_pool.hpp"
#include "core/recycler.hpp"

namespace trafficcop {
namespace {

struct thing {
  int v = 0;
};

TEST(ThreadCaches, TrimKeepsAWarmCore) {
  // On a thread of its own, so that the caches start empty.
  std::thread([] {
    using cache = recycler<thing, 128>;
    std::vector<std::unique_ptr<thing>> burst;
    for (int i = 0; i < 100; ++i) burst.push_back(cache::take());
    for (auto& t : burst) t->v = 1;  // recycled objects keep it; new ones have 0
    for (auto& t : burst) cache::give(std::move(t));
    std::vector<buffer_pool::handle> bufs;
    for (int i = 0; i < 40; ++i) bufs.push_back(buffer_pool::get());
    bufs.clear();  // 40 spare buffers: 1.25 MiB held by the thread

    thread_caches::trim(16);

    // 16 spare objects come back from the cache, then new ones.
    std::vector<std::unique_ptr<thing>> again;
    for (int i = 0; i < 17; ++i) again.push_back(cache::take());
    for (int i = 0; i < 16; ++i) EXPECT_EQ(again[i]->v, 1) << i;
    EXPECT_EQ(again[16]->v, 0);
  }).join();
}

}  // namespace
}  // namespace trafficcop
