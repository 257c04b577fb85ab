// SPDX-License-Identifier: MIT
// ratelimit::redis_store against a real redis-server started by the test on a free loopback
// port: GCRA decisions and their numbers, two stores sharing a key, pipelining, a stopped,
// killed and restarted redis, AUTH, unix sockets, and a store destroyed under its workers.
#include "ratelimit/redis_store.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using trafficcop::ratelimit::decision;
using trafficcop::ratelimit::gcra;
using trafficcop::ratelimit::redis_store;
using trafficcop::ratelimit::verdict;
using clk = std::chrono::steady_clock;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A redis-server child process on 127.0.0.1:port (and a unix socket when asked).
class redis_server {
 public:
  explicit redis_server(std::vector<std::string> extra = {}, std::string password = {})
      : extra_(std::move(extra)) {
    if (!password.empty()) auth_ = "--no-auth-warning -a " + password + " ";
    port_ = free_port();
    start();
  }
  ~redis_server() { kill(); }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void start() {
    std::vector<std::string> args = {
        "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
        "--save",       "",       "--appendonly",        "no"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen("/dev/null", "w", stdout);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    // Ready when it answers PING (bounded: 5 s).
    for (int i = 0; i < 500; ++i) {
      if (cli("PING") == "PONG") return;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "redis-server did not start on port " << port_;
  }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void stop() { ::kill(pid_, SIGSTOP); }
  void cont() { ::kill(pid_, SIGCONT); }

  /// One command through redis-cli; its first output line.
  std::string cli(const std::string& cmd) const {
    std::string line = "redis-cli -p " + std::to_string(port_) + " " + auth_ + cmd + " 2>/dev/null";
    FILE* p = ::popen(line.c_str(), "r");
    char buf[4096] = {};
    std::string out;
    if (p && std::fgets(buf, sizeof buf, p)) out = buf;
    if (p) ::pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }
  long info_field(const std::string& section, const std::string& name) const {
    std::string line = "redis-cli -p " + std::to_string(port_) + " " + auth_ + "INFO " + section;
    FILE* p = ::popen(line.c_str(), "r");
    char buf[4096];
    long v = -1;
    while (p && std::fgets(buf, sizeof buf, p)) {
      std::string s = buf;
      if (s.rfind(name + ":", 0) == 0) v = std::stol(s.substr(name.size() + 1));
    }
    if (p) ::pclose(p);
    return v;
  }

 private:
  std::vector<std::string> extra_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::string auth_;
};

/// A worker: one thread running one io_context (the thread ends before the context dies).
class worker {
 public:
  worker() : thread_([this] { ioc_.run(); }) {}
  ~worker() {
    guard_.reset();
    ioc_.stop();
    thread_.join();
  }
  template <class T>
  T run(asio::awaitable<T> a) {
    return asio::co_spawn(ioc_, std::move(a), asio::use_future).get();
  }
  decision acquire(redis_store& s, std::string key, gcra g) { return run(s.acquire(key, g)); }
  asio::io_context& ioc() { return ioc_; }

 private:
  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_{ioc_.get_executor()};
  std::thread thread_;
};

// 1 s unless the test is about timeouts: a first call connects, and a sanitizer build on a
// loaded machine can take longer than redis' usual 50 ms for that.
trafficcop::config::redis settings(const std::string& address, int timeout_ms = 1000) {
  trafficcop::config::redis c;
  c.address = address;
  c.timeout = std::chrono::milliseconds(timeout_ms);
  return c;
}

std::string unique_key(const char* name) {
  return std::string(name) + ":" + std::to_string(clk::now().time_since_epoch().count());
}

gcra shape(std::chrono::nanoseconds interval, std::uint32_t burst) { return {interval, burst}; }

/// Tries until the store answers something other than error (bounded), for recovery tests.
decision acquire_until_answered(worker& w, redis_store& s, const std::string& key, gcra g,
                                std::chrono::milliseconds within) {
  auto end = clk::now() + within;
  decision d;
  while (clk::now() < end) {
    d = w.acquire(s, key, g);
    if (d.v != verdict::error) return d;
    std::this_thread::sleep_for(20ms);
  }
  return d;
}

}  // namespace

TEST(RedisStore, BurstThenRate) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address()));
  auto key = unique_key("burst");
  auto g = shape(100ms, 5);
  // A full bucket lets `burst` through at once, remaining counting down; reset grows by one
  // interval per request, less the time redis' clock moved since the first (at most the time
  // this thread saw pass: a loaded machine widens the window, never shifts it).
  auto start = clk::now();
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto d = w.acquire(s, key, g);
    auto passed = clk::now() - start;
    ASSERT_EQ(d.v, verdict::allow) << i;
    EXPECT_EQ(d.remaining, 4 - i);
    EXPECT_EQ(d.retry_after, 0ns);
    EXPECT_GE(d.reset, 100ms * (i + 1) - passed);
    EXPECT_LE(d.reset, 100ms * (i + 1));
  }
  auto d = w.acquire(s, key, g);
  auto denied_at = clk::now();
  auto passed = denied_at - start;
  EXPECT_EQ(d.v, verdict::deny);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_GE(d.retry_after, 100ms - passed);
  EXPECT_LE(d.retry_after, 100ms);
  EXPECT_GE(d.reset, 500ms - passed);
  EXPECT_LE(d.reset, 500ms);
  EXPECT_EQ(d.reset - d.retry_after, 400ms);  // the tolerance: (burst - 1) intervals
  // Then the rate: one more after retry_after (measured from after the answer), not before.
  std::this_thread::sleep_until(denied_at + d.retry_after + 1ms);
  auto next = w.acquire(s, key, g);
  EXPECT_EQ(next.v, verdict::allow);
  EXPECT_EQ(next.remaining, 0u);
  EXPECT_EQ(w.acquire(s, key, g).v, verdict::deny);
  EXPECT_EQ(s.errors(), 0u);
  // The TAT key expires when the bucket is full again.
  auto pttl = std::stol(r.cli("PTTL trafficcop:ratelimit:" + key));
  EXPECT_GT(pttl, 300);
  EXPECT_LE(pttl, 500);
}

TEST(RedisStore, RateHoldsOverASecond) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address()));
  auto key = unique_key("rate");
  ASSERT_EQ(w.acquire(s, unique_key("connect"), shape(1ms, 1)).v, verdict::allow);
  // 50/s, burst 20, offered as fast as one worker can ask for 1 s: the burst, then one per
  // 20 ms of the time between the first call and the last, as redis' clock saw it (bounded
  // by what this thread saw around the calls). The burst's tolerance (380 ms) absorbs the
  // pauses of a loaded machine: with burst 1 the tolerance is 0 and every late poll pushes the
  // TAT back (GCRA's definition), so a polling client would see fewer.
  auto g = shape(20ms, 20);
  int allowed = 0;
  auto first_start = clk::now();
  auto first_end = first_start, last_start = first_start, last_end = first_start;
  clk::duration max_gap{};
  auto end = first_start + 1s;
  while (last_end < end) {
    last_start = clk::now();
    max_gap = std::max(max_gap, last_start - last_end);
    if (w.acquire(s, key, g).v == verdict::allow) ++allowed;
    last_end = clk::now();
    if (first_end == first_start) first_end = last_end;
  }
  if (max_gap > 300ms) GTEST_SKIP() << "this thread was descheduled for longer than the burst";
  auto lo = 20 + (last_start - first_end) / 20ms, hi = 20 + (last_end - first_start) / 20ms + 1;
  EXPECT_GE(allowed, lo);
  EXPECT_LE(allowed, hi);
  EXPECT_GE(allowed, 65);  // and it was about a second: 20 + 50
  EXPECT_LE(allowed, 71);
}

TEST(RedisStore, TwoStoresShareOneKey) {
  redis_server r;
  worker w1, w2;
  redis_store a(settings(r.address())), b(settings(r.address()));
  auto key = unique_key("shared");
  auto g = shape(1h, 10);  // no refill during the test
  int allowed = 0;
  for (int i = 0; i < 20; ++i) {
    auto d = i % 2 ? w1.acquire(a, key, g) : w2.acquire(b, key, g);
    ASSERT_NE(d.v, verdict::error);
    if (d.v == verdict::allow) {
      ++allowed;
      EXPECT_EQ(d.remaining, 10u - static_cast<unsigned>(allowed));
    }
  }
  EXPECT_EQ(allowed, 10);
}

TEST(RedisStore, ConcurrentAcquiresShareOnePipelinedConnection) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address(), 1000));
  auto key = unique_key("pipe");
  auto g = shape(1h, 100);
  long conns_before = r.info_field("stats", "total_connections_received");
  auto results = w.run([&]() -> asio::awaitable<std::vector<decision>> {
    auto ex = co_await asio::this_coro::executor;
    std::vector<std::future<decision>> fs;
    for (int i = 0; i < 300; ++i)
      fs.push_back(asio::co_spawn(ex, s.acquire(key, g), asio::use_future));
    // Wait without blocking the loop: the futures complete on this same worker.
    asio::steady_timer t(ex);
    for (auto& f : fs)
      while (f.wait_for(0s) != std::future_status::ready) {
        t.expires_after(1ms);
        co_await t.async_wait(asio::use_awaitable);
      }
    std::vector<decision> out;
    for (auto& f : fs) out.push_back(f.get());
    co_return out;
  }());
  std::vector<bool> seen(100, false);
  int allowed = 0, denied = 0;
  for (auto& d : results) {
    if (d.v == verdict::allow) {
      ++allowed;
      ASSERT_LT(d.remaining, 100u);
      EXPECT_FALSE(seen[d.remaining]) << "remaining " << d.remaining << " twice";
      seen[d.remaining] = true;
    } else if (d.v == verdict::deny) {
      ++denied;
    }
  }
  EXPECT_EQ(allowed, 100);
  EXPECT_EQ(denied, 200);
  EXPECT_EQ(s.errors(), 0u);
  // One connection (per worker and store) carried all 300; the other one counted is the
  // redis-cli asking.
  EXPECT_EQ(r.info_field("stats", "total_connections_received") - conns_before, 2);
}

TEST(RedisStore, StoppedRedisErrorsWithinTimeoutThenRecovers) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address(), 50));
  auto key = unique_key("stop");
  auto g = shape(1ms, 1000);
  // Connected first (the connect itself may take longer than 50 ms in a sanitizer build).
  ASSERT_EQ(acquire_until_answered(w, s, key, g, 3000ms).v, verdict::allow);
  r.stop();
  // Concurrent and sequential calls for ~1 s: each errors within the timeout (+ slack), and the
  // worker's loop keeps turning (a 10 ms ticker on it never sees a gap near the timeout).
  auto results =
      w.run([&]() -> asio::awaitable<std::pair<std::vector<clk::duration>, clk::duration>> {
        auto ex = co_await asio::this_coro::executor;
        std::vector<clk::duration> took;
        clk::duration max_gap{};
        bool done = false;
        asio::co_spawn(
            ex,
            [&]() -> asio::awaitable<void> {
              asio::steady_timer t(ex);
              auto last = clk::now();
              while (!done) {
                t.expires_after(10ms);
                co_await t.async_wait(asio::use_awaitable);
                max_gap = std::max(max_gap, clk::now() - last);
                last = clk::now();
              }
            },
            asio::detached);
        auto end = clk::now() + 1s;
        while (clk::now() < end) {
          std::vector<std::future<clk::duration>> fs;
          for (int i = 0; i < 10; ++i)
            fs.push_back(asio::co_spawn(
                ex,
                [&]() -> asio::awaitable<clk::duration> {
                  auto t0 = clk::now();
                  auto d = co_await s.acquire(key, g);
                  EXPECT_EQ(d.v, verdict::error);
                  co_return clk::now() - t0;
                },
                asio::use_future));
          asio::steady_timer t(ex);
          for (auto& f : fs)
            while (f.wait_for(0s) != std::future_status::ready) {
              t.expires_after(1ms);
              co_await t.async_wait(asio::use_awaitable);
            }
          for (auto& f : fs) took.push_back(f.get());
        }
        done = true;
        co_return std::make_pair(took, max_gap);
      }());
  // Slack: this 2-core machine runs other builds (load 10 seen); a stalled store would show
  // in the 90th percentile, a starved process only in the tail.
  auto& took = results.first;
  ASSERT_GT(took.size(), 50u);
  std::sort(took.begin(), took.end());
  EXPECT_LT(took[took.size() * 9 / 10], 50ms + 25ms);
  EXPECT_LT(took.back(), 50ms + 150ms);
  EXPECT_LT(results.second, 10ms + 150ms);
  EXPECT_GE(s.errors(), results.first.size());
  r.cont();
  // Back-off is at most 2 s: an answer comes within 3.
  EXPECT_EQ(acquire_until_answered(w, s, key, g, 3000ms).v, verdict::allow);
}

TEST(RedisStore, LateReplyIsMatchedToItsTimedOutCallAndDropped) {
  // hz 100: redis ends a CLIENT PAUSE in its cron, every 10 ms then (100 ms by default).
  redis_server r({"--hz", "100"});
  worker w;
  redis_store s(settings(r.address(), 100));
  auto key = unique_key("late");
  auto g = shape(1h, 10);
  ASSERT_EQ(acquire_until_answered(w, s, unique_key("connect"), g, 3000ms).v, verdict::allow);
  ASSERT_EQ(w.acquire(s, key, g).remaining, 9u);
  long conns = r.info_field("stats", "total_connections_received");
  // redis holds every client's commands for 150 ms: the next call times out at 100 ms, its
  // reply comes at 150 ms on the same connection, ahead of the following call's.
  ASSERT_EQ(r.cli("CLIENT PAUSE 150 ALL"), "OK");
  auto t0 = clk::now();
  EXPECT_EQ(w.acquire(s, key, g).v, verdict::error);
  auto took = clk::now() - t0;
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 140ms);
  // This one gets its own reply (the late one, which also took a token, is dropped).
  auto d = w.acquire(s, key, g);
  EXPECT_EQ(d.v, verdict::allow);
  EXPECT_EQ(d.remaining, 7u);
  EXPECT_EQ(w.acquire(s, key, g).remaining, 6u);
  EXPECT_EQ(s.errors(), 1u);
  // Still the same connection (the two more counted are the redis-cli calls: PAUSE, INFO).
  EXPECT_EQ(r.info_field("stats", "total_connections_received"), conns + 2);
}

TEST(RedisStore, KilledRedisFailsFastAndRestartRecovers) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address(), 500));
  auto key = unique_key("kill");
  auto g = shape(1ms, 1000);
  ASSERT_EQ(w.acquire(s, key, g).v, verdict::allow);
  r.kill();
  // Far below the 500 ms timeout: a reset or refused connection answers at once, and the
  // back-off answers without trying.
  for (int i = 0; i < 20; ++i) {
    auto t0 = clk::now();
    EXPECT_EQ(w.acquire(s, key, g).v, verdict::error);
    EXPECT_LT(clk::now() - t0, 100ms);
  }
  EXPECT_GE(s.errors(), 20u);
  r.start();
  EXPECT_EQ(acquire_until_answered(w, s, key, g, 3000ms).v, verdict::allow);
}

TEST(RedisStore, ScriptFlushIsSurvived) {
  redis_server r;
  worker w;
  redis_store s(settings(r.address()));
  auto key = unique_key("flush");
  auto g = shape(1h, 3);
  EXPECT_EQ(w.acquire(s, key, g).remaining, 2u);
  ASSERT_EQ(r.cli("SCRIPT FLUSH"), "OK");
  // NOSCRIPT → the same call goes again as EVAL (and the bucket counts it once).
  auto d = w.acquire(s, key, g);
  EXPECT_EQ(d.v, verdict::allow);
  EXPECT_EQ(d.remaining, 1u);
  EXPECT_EQ(w.acquire(s, key, g).remaining, 0u);
  EXPECT_EQ(s.errors(), 0u);
}

TEST(RedisStore, AuthWithPasswordFileEnvAndUser) {
  redis_server r({"--requirepass", "s3cret"}, "s3cret");
  worker w;
  auto dir = std::filesystem::temp_directory_path() / unique_key("rlauth");
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "pw") << "s3cret\n";
  auto g = shape(1h, 10);

  auto c = settings(r.address());
  c.password_file = (dir / "pw").string();
  redis_store by_file(c);
  EXPECT_EQ(w.acquire(by_file, unique_key("auth"), g).v, verdict::allow);

  ::setenv("RL_TEST_REDIS_PW", "s3cret", 1);
  auto e = settings(r.address());
  e.password_env = "RL_TEST_REDIS_PW";
  e.username = "default";  // AUTH user password (redis 6 ACLs)
  redis_store by_env(e);
  EXPECT_EQ(w.acquire(by_env, unique_key("auth"), g).v, verdict::allow);

  ::setenv("RL_TEST_REDIS_PW", "wrong", 1);
  redis_store wrong(e);
  EXPECT_EQ(w.acquire(wrong, unique_key("auth"), g).v, verdict::error);
  EXPECT_EQ(w.acquire(wrong, unique_key("auth"), g).v, verdict::error);  // backing off
  EXPECT_EQ(wrong.errors(), 2u);

  auto none = settings(r.address());
  redis_store no_password(none);
  EXPECT_EQ(w.acquire(no_password, unique_key("auth"), g).v, verdict::error);
  EXPECT_EQ(no_password.errors(), 1u);
  EXPECT_EQ(by_file.errors() + by_env.errors(), 0u);
  std::filesystem::remove_all(dir);
}

TEST(RedisStore, BadPasswordSourcesThrowNamingTheKey) {
  auto c = settings("127.0.0.1:1");
  c.password_file = "/nonexistent/pw";
  try {
    redis_store s(c);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(),
                 "redis.password_file: cannot read /nonexistent/pw: No such file or directory");
  }
  auto v = settings("127.0.0.1:1");
  v.password_env = "RL_TEST_SURELY_UNSET";
  ::unsetenv("RL_TEST_SURELY_UNSET");
  try {
    redis_store s(v);
    FAIL() << "no throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "redis.password_env: RL_TEST_SURELY_UNSET is not set");
  }
}

TEST(RedisStore, UnixSocket) {
  auto path = (std::filesystem::temp_directory_path() / unique_key("redis.sock")).string();
  redis_server r({"--unixsocket", path});
  worker w;
  redis_store s(settings("unix:" + path));
  auto key = unique_key("unix");
  EXPECT_EQ(w.acquire(s, key, shape(1h, 2)).remaining, 1u);
  EXPECT_EQ(w.acquire(s, key, shape(1h, 2)).remaining, 0u);
  EXPECT_EQ(w.acquire(s, key, shape(1h, 2)).v, verdict::deny);
  EXPECT_EQ(s.errors(), 0u);
}

TEST(RedisStore, UnreachableAddressErrorsAndCounts) {
  worker w;
  redis_store s(settings("127.0.0.1:" + std::to_string(free_port())));
  EXPECT_EQ(w.acquire(s, "k", shape(1ms, 1)).v, verdict::error);
  EXPECT_EQ(s.errors(), 1u);
}

TEST(RedisStore, DestroyedStoreClosesItsWorkerConnections) {
  redis_server r;
  worker w;
  auto g = shape(1h, 10);
  long base = r.info_field("clients", "connected_clients");  // redis-cli itself
  auto old = std::make_unique<redis_store>(settings(r.address()));
  ASSERT_EQ(w.acquire(*old, unique_key("old"), g).v, verdict::allow);
  EXPECT_EQ(r.info_field("clients", "connected_clients"), base + 1);
  // A call under way when the store goes (a reload) still completes.
  auto pending = asio::co_spawn(w.ioc(), old->acquire(unique_key("old"), g), asio::use_future);
  old.reset();
  EXPECT_NE(pending.get().v, verdict::error);
  // The worker's next call on any store drops the dead store's connection.
  redis_store next(settings(r.address()));
  ASSERT_EQ(w.acquire(next, unique_key("new"), g).v, verdict::allow);
  long now = base + 1;
  for (int i = 0; i < 100 && r.info_field("clients", "connected_clients") != now; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(r.info_field("clients", "connected_clients"), now);
}
