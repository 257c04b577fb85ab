// SPDX-License-Identifier: MIT
// The global rate-limit store: GCRA in a Lua script inside redis, over one pipelined connection
// per worker and store.
//
// How it works. acquire() finds this worker's connection to the store (a thread_local map keyed
// by the store's id, like lb/cluster.cpp's per-worker state), appends one EVALSHA to the
// connection's output buffer and waits on a timer that doubles as its wake-up: the reply reader
// sets the answer and cancels the timer; if the timer fires first the call answers
// verdict::error and its FIFO entry stays, marked abandoned, so that the reply, when it comes,
// is matched to it and dropped. Commands written in one event-loop turn go out in one write
// (the flush is posted); replies are matched in FIFO order, as redis answers a connection's
// commands in order. RESP is encoded by hiredis' redisFormatCommandArgv and decoded by its
// redisReader: hiredis does no I/O here, Asio does.
//
// Failures. A broken connection (EOF, reset, refused, bad AUTH, a protocol error, or no reply
// at all for two timeouts while calls wait: a SIGSTOPped redis) fails every waiting call at
// once and starts a back-off (50 ms doubling to 2 s, jittered); during it acquire() answers
// error without touching the network. The next call after it reconnects.
//
// Lifetimes. The store's settings, password and counters live in `shared_state`, held by the
// store and by each connection; a store destroyed at reload bumps a global epoch, and each
// worker, at its next acquire() on any store, closes and drops its connections to dead stores.
// A connection is held by its map entry, its reader coroutine and the calls under way.
// Requirement: a worker thread ends before its io_context is destroyed (server/worker does).
#include "ratelimit/redis_store.hpp"

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/failures.hpp"
#include "core/log.hpp"

namespace trafficcop::ratelimit {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;
using error_code = boost::system::error_code;
using asio::as_tuple;
using asio::use_awaitable;

namespace {

// GCRA in Lua, run atomically by redis. Why not INCR + PEXPIRE on windows: a fixed window lets
// 2x the rate through around a window edge and a sliding one needs two keys or a sorted set;
// GCRA is exact (the same decisions as the local limiter, limit.hpp), keeps one key of one
// number per bucket, and answers remaining/retry-after/reset in the same single round trip.
// The clock is redis' TIME, not the caller's: every instance then judges against one clock, so
// skew between proxy hosts cannot let one of them spend the bucket early (redis 7 replicates a
// script's effects, not the script, so TIME is allowed before a write). Times are in
// microseconds since the epoch (≈1.8e15, exact in a Lua double; nanoseconds would not be).
// The TAT is stored with PX = until the bucket is full again: an idle key vanishes, and an
// absent key means a full bucket. Returns {allowed, remaining, retry_after_us, reset_us}.
constexpr std::string_view gcra_script = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, 0, tat - tolerance - now, tat - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((tolerance - (new_tat - now)) / interval) + 1, 0, new_tat - now}
)lua";

constexpr std::string_view key_prefix = "trafficcop:ratelimit:";
constexpr auto backoff_first = std::chrono::milliseconds(50);
constexpr auto backoff_max = std::chrono::milliseconds(2000);
constexpr std::size_t max_waiting = 100000;  // calls in flight on one connection

std::string sha1_hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t n = 0;
  if (!EVP_Q_digest(nullptr, "SHA1", nullptr, s.data(), s.size(), md, &n)) return {};
  std::string hex;
  for (std::size_t i = 0; i < n; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

std::string read_password(const config::redis& cfg) {
  if (!cfg.password_file.empty()) {
    std::ifstream f(cfg.password_file);
    if (!f)
      throw std::runtime_error("redis.password_file: cannot read " + cfg.password_file + ": " +
                               std::strerror(errno));
    std::string line;
    std::getline(f, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }
  if (!cfg.password_env.empty()) {
    const char* v = std::getenv(cfg.password_env.c_str());
    if (!v) throw std::runtime_error("redis.password_env: " + cfg.password_env + " is not set");
    return v;
  }
  return {};
}

/// One RESP command, encoded by hiredis (at most 6 arguments: no vector per command).
std::string format(std::initializer_list<std::string_view> args) {
  std::array<const char*, 6> argv{};
  std::array<std::size_t, 6> lens{};
  std::size_t n = 0;
  for (auto a : args) {
    if (n == argv.size()) return {};
    argv[n] = a.data();
    lens[n++] = a.size();
  }
  char* cmd = nullptr;
  int len = redisFormatCommandArgv(&cmd, static_cast<int>(n), argv.data(), lens.data());
  std::string out;
  if (len > 0) out.assign(cmd, static_cast<std::size_t>(len));
  redisFreeCommand(cmd);
  return out;
}

std::atomic<std::uint64_t> next_store_id{1};
std::atomic<std::uint64_t> dead_stores{0};  // bumped by each store's destructor

}  // namespace

/// What a store shares with its connections on every worker; outlives the store.
struct shared_state {
  config::redis cfg;
  std::string password;
  std::string sha;  // of gcra_script
  std::uint64_t id = next_store_id.fetch_add(1);
  std::atomic<bool> alive{true};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::int64_t> last_log_ns{0};
  std::atomic<std::uint64_t> logged_errors{0};

  /// Counts one failed call; logs the cause at most once a second per store.
  void failed(std::string_view cause) {
    auto n = errors.fetch_add(1, std::memory_order_relaxed) + 1;
    auto now = clock::now().time_since_epoch().count();
    auto last = last_log_ns.load(std::memory_order_relaxed);
    if (last != 0 && now - last < std::chrono::nanoseconds(std::chrono::seconds(1)).count()) return;
    if (!last_log_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
    auto before = logged_errors.exchange(n, std::memory_order_relaxed);
    log::warn("redis {}: {} ({} failures since the last message, {} in all)", cfg.address, cause,
              n - before, n);
  }
};

namespace {

/// One acquire() waiting for its reply.
struct waiter {
  explicit waiter(const asio::any_io_executor& ex) : wake(ex) {}
  asio::steady_timer wake;  // the deadline, cancelled when the answer is in
  bool done = false;
  bool abandoned = false;  // timed out: the reply is dropped
  decision answer;
  std::string cause;                    // why, when answer is error
  std::string key, interval_us, burst;  // kept to resend as EVAL on NOSCRIPT
};

enum class sent : std::uint8_t { auth, script_load, eval };

struct entry {
  sent what;
  std::shared_ptr<waiter> w;  // eval only
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(std::shared_ptr<shared_state> st, asio::any_io_executor ex)
      : st_(std::move(st)), ex_(std::move(ex)), sock_(ex_) {}
  ~connection() {
    if (reader_) redisReaderFree(reader_);
  }

  const std::shared_ptr<shared_state>& state() const { return st_; }

  /// Queues the call; false (with w->cause) when it must fail now: backing off, or too many.
  bool submit(const std::shared_ptr<waiter>& w);
  /// The call timed out. A connection that answered nothing for two timeouts while calls
  /// waited is taken as broken (a stopped or stalled redis): everything waiting fails now, and
  /// the back-off spares the next calls the wait. One timeout of silence is not enough: a
  /// reply late by less (a slow script of another client, a short pause) keeps the connection;
  /// its caller has its error already, and the reply is matched to it and dropped.
  void timed_out(clock::time_point now);
  /// The store is gone: refuse new calls, close once those under way are answered.
  void retire() {
    retired_ = true;
    if (fifo_.empty()) fail("store removed", false);
  }

 private:
  enum class phase : std::uint8_t { idle, connecting, connected, backoff };

  void start_connect();
  asio::awaitable<void> run(std::uint64_t gen);
  asio::awaitable<error_code> connect_socket(std::uint64_t gen);
  void schedule_flush();
  void start_write();
  bool on_reply(redisReply* r);
  void answer(waiter& w, redisReply* r);
  void fail(const std::string& cause, bool count = true);
  void push(sent what, std::string cmd, std::shared_ptr<waiter> w = nullptr);

  std::shared_ptr<shared_state> st_;
  asio::any_io_executor ex_;
  asio::generic::stream_protocol::socket sock_;
  phase phase_ = phase::idle;
  bool retired_ = false;
  std::uint64_t gen_ = 0;   // bumped at each failure: completions of an older socket are stale
  std::deque<entry> fifo_;  // sent or queued commands, in the order redis answers them
  std::string out_;         // queued, not yet written
  std::string writing_buf_;
  bool writing_ = false;
  bool flush_posted_ = false;
  redisReader* reader_ = nullptr;
  std::vector<char> rbuf_ = std::vector<char>(16 * 1024);
  clock::time_point progress_{};  // last reply, or when the FIFO last became non-empty
  clock::time_point backoff_until_{};
  clock::duration backoff_ = backoff_first;
  std::minstd_rand rng_{std::random_device{}()};
};

void connection::push(sent what, std::string cmd, std::shared_ptr<waiter> w) {
  if (fifo_.empty()) progress_ = clock::now();
  fifo_.push_back({what, std::move(w)});
  out_ += cmd;
}

bool connection::submit(const std::shared_ptr<waiter>& w) {
  if (retired_) {
    w->cause = "store removed";
    return false;
  }
  if (phase_ == phase::backoff) {
    if (clock::now() < backoff_until_) {
      w->cause = "backing off after a failure";
      return false;
    }
    phase_ = phase::idle;
  }
  if (fifo_.size() >= max_waiting) {
    w->cause = "too many calls waiting";
    return false;
  }
  push(sent::eval, format({"EVALSHA", st_->sha, "1", w->key, w->interval_us, w->burst}), w);
  if (phase_ == phase::idle)
    start_connect();
  else if (phase_ == phase::connected)
    schedule_flush();
  return true;
}

void connection::start_connect() {
  phase_ = phase::connecting;
  reader_ = redisReaderCreate();
  // Ahead of the calls already queued: AUTH, then the script (so that EVALSHA finds it).
  std::deque<entry> queued;
  queued.swap(fifo_);
  std::string cmds;
  cmds.swap(out_);
  if (!st_->password.empty()) {
    if (st_->cfg.username.empty())
      push(sent::auth, format({"AUTH", st_->password}));
    else
      push(sent::auth, format({"AUTH", st_->cfg.username, st_->password}));
  }
  push(sent::script_load, format({"SCRIPT", "LOAD", gcra_script}));
  for (auto& e : queued) fifo_.push_back(std::move(e));
  out_ += cmds;
  asio::co_spawn(ex_, run(gen_), [self = shared_from_this()](std::exception_ptr e) {
    if (!e) return;
    note_coroutine_failure("redis connection", e);
    std::string why;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      why = std::string("bug: ") + x.what();
    } catch (...) {
      why = "bug: an exception that is not a std::exception";
    }
    self->fail(why);
  });
}

asio::awaitable<error_code> connection::connect_socket(std::uint64_t gen) {
  const auto& a = st_->cfg.address;
  if (a.rfind("unix:", 0) == 0) {
    asio::local::stream_protocol::endpoint ep(a.substr(5));
    auto [ec] = co_await sock_.async_connect(ep, as_tuple(use_awaitable));
    co_return ec;
  }
  auto colon = a.rfind(':');
  if (colon == std::string::npos) co_return asio::error::invalid_argument;
  std::string host = a.substr(0, colon), port = a.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  error_code bad;
  auto ip = asio::ip::make_address(host, bad);
  if (!bad) {  // an address: no resolver round (its thread) on the first call's path
    auto n = static_cast<unsigned short>(std::strtoul(port.c_str(), nullptr, 10));
    auto [ec] =
        co_await sock_.async_connect(asio::ip::tcp::endpoint(ip, n), as_tuple(use_awaitable));
    if (!ec) sock_.set_option(asio::ip::tcp::no_delay(true), bad);
    co_return ec;
  }
  asio::ip::tcp::resolver res(ex_);
  auto [rec, eps] = co_await res.async_resolve(host, port, as_tuple(use_awaitable));
  if (rec || gen != gen_) co_return rec ? rec : asio::error::operation_aborted;
  error_code ec = asio::error::host_not_found;
  for (const auto& e : eps) {
    sock_ = asio::generic::stream_protocol::socket(ex_);
    std::tie(ec) = co_await sock_.async_connect(e.endpoint(), as_tuple(use_awaitable));
    // fail() closed the socket meanwhile: a later connection owns sock_ now.
    if (gen != gen_) co_return asio::error::operation_aborted;
    if (!ec) {
      error_code ignored;
      sock_.set_option(asio::ip::tcp::no_delay(true), ignored);
      break;
    }
  }
  co_return ec;
}

asio::awaitable<void> connection::run(std::uint64_t gen) {
  auto self = shared_from_this();
  auto ec = co_await connect_socket(gen);
  if (gen != gen_) co_return;  // failed (timed out, retired) while connecting
  if (ec) {
    fail("cannot connect: " + ec.message());
    co_return;
  }
  phase_ = phase::connected;
  start_write();
  for (;;) {
    auto [rec, n] = co_await sock_.async_read_some(asio::buffer(rbuf_), as_tuple(use_awaitable));
    if (gen != gen_) co_return;
    if (rec) {
      fail(rec == asio::error::eof ? std::string("connection closed by redis")
                                   : "read: " + rec.message());
      co_return;
    }
    if (redisReaderFeed(reader_, rbuf_.data(), n) != REDIS_OK) {
      fail(std::string("bad reply: ") + reader_->errstr);
      co_return;
    }
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader_, &r) != REDIS_OK) {
        fail(std::string("bad reply: ") + reader_->errstr);
        co_return;
      }
      if (!r) break;
      bool ok = on_reply(static_cast<redisReply*>(r));
      freeReplyObject(r);
      if (!ok || gen != gen_) co_return;
    }
  }
}

void connection::schedule_flush() {
  // Posted, not written now: the other calls of this event-loop turn join the same write.
  if (flush_posted_ || writing_) return;
  flush_posted_ = true;
  asio::post(ex_, [self = shared_from_this(), gen = gen_] {
    self->flush_posted_ = false;
    if (gen == self->gen_) self->start_write();
  });
}

void connection::start_write() {
  if (writing_ || out_.empty() || phase_ != phase::connected) return;
  writing_ = true;
  writing_buf_.clear();
  writing_buf_.swap(out_);
  asio::async_write(sock_, asio::buffer(writing_buf_),
                    [self = shared_from_this(), gen = gen_](error_code ec, std::size_t) {
                      if (gen != self->gen_) return;
                      self->writing_ = false;
                      if (ec) return self->fail("write: " + ec.message());
                      self->start_write();
                    });
}

bool connection::on_reply(redisReply* r) {
  if (fifo_.empty()) {
    fail("a reply nobody asked for");
    return false;
  }
  auto e = std::move(fifo_.front());
  fifo_.pop_front();
  progress_ = clock::now();
  bool is_error = r->type == REDIS_REPLY_ERROR;
  std::string_view text = r->str ? std::string_view(r->str, r->len) : std::string_view{};
  switch (e.what) {
    case sent::auth:
      if (is_error) fail("AUTH refused: " + std::string(text));
      return !is_error;
    case sent::script_load:
      if (is_error || text != st_->sha) fail("SCRIPT LOAD failed: " + std::string(text));
      return !is_error && text == st_->sha;
    case sent::eval:
      break;
  }
  if (retired_ && fifo_.empty()) {
    answer(*e.w, r);
    fail("store removed", false);
    return false;
  }
  auto& w = *e.w;
  if (w.abandoned) return true;  // its caller timed out already; FIFO order is kept
  if (is_error && text.starts_with("NOSCRIPT")) {
    // SCRIPT FLUSH, or a failover to a replica without it: EVAL loads it again.
    push(sent::eval, format({"EVAL", gcra_script, "1", w.key, w.interval_us, w.burst}), e.w);
    schedule_flush();
    return true;
  }
  answer(w, r);
  return true;
}

void connection::answer(waiter& w, redisReply* r) {
  if (w.abandoned) return;
  w.done = true;
  w.wake.cancel();
  bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 4;
  for (std::size_t i = 0; ok && i < 4; ++i) ok = r->element[i]->type == REDIS_REPLY_INTEGER;
  if (!ok) {
    w.cause = r->type == REDIS_REPLY_ERROR ? "error reply: " + std::string(r->str, r->len)
                                           : std::string("unexpected reply to EVALSHA");
    return;
  }
  backoff_ = backoff_first;  // a working connection: the next failure starts afresh
  auto us = [&](std::size_t i) { return std::chrono::microseconds(r->element[i]->integer); };
  w.answer.v = r->element[0]->integer ? verdict::allow : verdict::deny;
  w.answer.remaining = static_cast<std::uint32_t>(std::max<long long>(r->element[1]->integer, 0));
  w.answer.retry_after = us(2);
  w.answer.reset = us(3);
}

void connection::timed_out(clock::time_point now) {
  auto timeout = std::chrono::duration_cast<clock::duration>(st_->cfg.timeout);
  if (phase_ != phase::backoff && phase_ != phase::idle && !fifo_.empty() &&
      now - progress_ >= 2 * timeout)
    fail(fmt::format("no reply within {} ms", 2 * st_->cfg.timeout.count()));
}

void connection::fail(const std::string& cause, bool count) {
  ++gen_;
  error_code ignored;
  sock_.close(ignored);
  if (reader_) redisReaderFree(reader_);
  reader_ = nullptr;
  out_.clear();
  writing_ = false;
  auto fifo = std::move(fifo_);
  fifo_.clear();
  for (auto& e : fifo) {
    if (!e.w || e.w->done || e.w->abandoned) continue;
    e.w->done = true;
    e.w->cause = cause;
    e.w->wake.cancel();
  }
  // Jittered, so that the workers of many instances do not reconnect in step.
  auto d = std::chrono::duration_cast<clock::duration>(backoff_);
  auto jitter = std::uniform_int_distribution<clock::rep>(d.count() / 2, d.count())(rng_);
  backoff_until_ = clock::now() + clock::duration(jitter);
  backoff_ = std::min<clock::duration>(backoff_ * 2, backoff_max);
  phase_ = phase::backoff;
  if (fifo.empty() && count) st_->failed(cause);  // nobody waited: count the failure itself
}

using connection_map = std::unordered_map<std::uint64_t, std::shared_ptr<connection>>;

connection_map& local_connections() {
  thread_local connection_map conns;
  return conns;
}

/// This worker's connection to the store, made on first use; null when the store is gone and
/// this worker never talked to it.
std::shared_ptr<connection> local_connection(const std::shared_ptr<shared_state>& st,
                                             const asio::any_io_executor& ex) {
  auto& conns = local_connections();
  auto it = conns.find(st->id);
  if (it != conns.end()) return it->second;
  if (!st->alive.load(std::memory_order_acquire)) return nullptr;
  return conns.emplace(st->id, std::make_shared<connection>(st, ex)).first->second;
}

/// Retires this worker's connections to stores destroyed since the last look (after the
/// caller's own call is queued: a call that began before its store went still completes).
void drop_dead_connections() {
  thread_local std::uint64_t seen = 0;
  auto dead = dead_stores.load(std::memory_order_acquire);
  if (dead == seen) return;
  seen = dead;
  auto& conns = local_connections();
  for (auto it = conns.begin(); it != conns.end();) {
    if (it->second->state()->alive.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    it->second->retire();
    it = conns.erase(it);
  }
}

/// acquire() once the store's state is held: the store may go while this waits.
asio::awaitable<decision> acquire_on(std::shared_ptr<shared_state> st, std::string key,
                                     gcra shape) {
  std::string cause;
  try {
    auto ex = co_await asio::this_coro::executor;
    auto w = std::make_shared<waiter>(ex);
    w->key.reserve(key_prefix.size() + key.size());
    w->key.append(key_prefix).append(key);
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(shape.interval).count();
    w->interval_us = std::to_string(std::max<std::int64_t>(us, 1));
    w->burst = std::to_string(std::max<std::uint32_t>(shape.burst, 1));
    auto conn = local_connection(st, ex);
    bool queued = conn && conn->submit(w);
    drop_dead_connections();
    if (!conn) w->cause = "store removed";
    if (queued) {
      w->wake.expires_after(st->cfg.timeout);
      if (!w->done) co_await w->wake.async_wait(as_tuple(use_awaitable));
      if (!w->done) {
        w->abandoned = true;
        w->cause = fmt::format("no reply within {} ms", st->cfg.timeout.count());
        conn->timed_out(clock::now());
      }
    }
    if (w->done && w->cause.empty()) co_return w->answer;
    cause = std::move(w->cause);
  } catch (const std::exception& e) {
    cause = std::string("bug: ") + e.what();
  }
  st->failed(cause);
  co_return decision{};
}

}  // namespace

struct redis_store::impl {
  std::shared_ptr<shared_state> st;
};

redis_store::redis_store(const config::redis& cfg) : impl_(std::make_unique<impl>()) {
  auto st = std::make_shared<shared_state>();
  st->cfg = cfg;
  st->password = read_password(cfg);
  st->sha = sha1_hex(gcra_script);
  impl_->st = std::move(st);
}

redis_store::~redis_store() {
  impl_->st->alive.store(false, std::memory_order_release);
  dead_stores.fetch_add(1, std::memory_order_acq_rel);
}

std::uint64_t redis_store::errors() const noexcept {
  return impl_->st->errors.load(std::memory_order_relaxed);
}

const config::redis& redis_store::settings() const noexcept { return impl_->st->cfg; }

asio::awaitable<decision> redis_store::acquire(std::string_view key, gcra shape) {
  // Not a coroutine itself: the state and the key are copied now, before the caller suspends.
  return acquire_on(impl_->st, std::string(key), shape);
}

}  // namespace trafficcop::ratelimit
