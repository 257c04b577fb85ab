// SPDX-License-Identifier: MIT
// alloc_per_request: the steady-state number of heap allocations per proxied request.
//
//   alloc_per_request [--requests N] [--warmup W] [--connections K] [--target T] [--max X]
//
// In one process, on 127.0.0.1 port 0: an upstream trafficcop::server (1 worker) answering
// every request with 200 and a 64-byte body, a reverse proxy trafficcop::server (1 worker) in
// front of it, and a blocking client in the main thread with K keep-alive connections. After W
// warm-up requests (pools, buffers, caches filled) it counts every heap allocation in the
// process over N more requests and prints the count per request. Every response is checked
// (status 200, Content-Length 64, the exact body), so errors cannot pass for a low count.
//
// The count covers the whole process: the proxy's worker, the upstream server's worker (the
// same server code, so the same allocations on its side of each request) and the client, which
// allocates nothing while it runs. The split by thread is printed too.
//
// Counting: this executable defines malloc, free, calloc, realloc, aligned_alloc,
// posix_memalign and memalign, which the dynamic linker binds every library's calls to
// (glibc supports replacing malloc this way), and forwards them to glibc's own __libc_*
// entry points. Counting operator new alone would miss C allocations and Asio's coroutine
// frames, which use aligned_alloc. Global operator new/delete (every standard overload) go
// through the counting malloc too.
#include <dlfcn.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <algorithm>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

// --- counting allocator ---------------------------------------------------------------------

extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {

enum thread_role : int { role_proxy = 0, role_upstream = 1, role_client = 2 };
constexpr int role_count = 3;

std::atomic<std::uint64_t> allocations{0};
std::atomic<std::uint64_t> frees{0};
std::atomic<std::uint64_t> allocations_by_role[role_count];
std::atomic<std::uint64_t> aligned_allocations{0};  // Asio's recycled blocks come this way
// Threads start as role_proxy (the proxy's worker and any other thread); the upstream's
// handler and main() retag their own threads. Initial-exec TLS: no allocation to reach it.
thread_local int role = role_proxy;

inline void count_allocation() noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  allocations_by_role[role].fetch_add(1, std::memory_order_relaxed);
}

// --sites: where the proxy worker's aligned allocations come from, by (caller, size). Only the
// proxy's thread records, so the table needs no lock; a fixed array, so recording allocates
// nothing. Off (recording == false) until the counted requests start.
struct site {
  void* caller;
  std::size_t size;
  std::uint64_t count;
};
constexpr std::size_t site_slots = 4096;
site sites[site_slots];
std::atomic<bool> recording{false};

void record_site(void* caller, std::size_t size) noexcept {
  std::size_t h = (reinterpret_cast<std::uintptr_t>(caller) * 31 + size) % site_slots;
  for (std::size_t i = 0; i < site_slots; ++i, h = (h + 1) % site_slots) {
    if (sites[h].count == 0) sites[h] = {caller, size, 0};
    if (sites[h].caller == caller && sites[h].size == size) {
      ++sites[h].count;
      return;
    }
  }
}

[[gnu::noinline]] void* counted_memalign(std::size_t alignment, std::size_t size,
                                         void* caller) noexcept {
  count_allocation();
  aligned_allocations.fetch_add(1, std::memory_order_relaxed);
  if (role == role_proxy && recording.load(std::memory_order_relaxed)) record_site(caller, size);
  return __libc_memalign(alignment, size);
}

}  // namespace

extern "C" {

void* malloc(std::size_t size) noexcept {
  count_allocation();
  return __libc_malloc(size);
}

void free(void* p) noexcept {
  if (p) frees.fetch_add(1, std::memory_order_relaxed);
  __libc_free(p);
}

void* calloc(std::size_t n, std::size_t size) noexcept {
  count_allocation();
  return __libc_calloc(n, size);
}

// Every realloc counts as one allocation: it may move the block.
void* realloc(void* p, std::size_t size) noexcept {
  count_allocation();
  return __libc_realloc(p, size);
}

void* aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  return counted_memalign(alignment, size, __builtin_return_address(0));
}

void* memalign(std::size_t alignment, std::size_t size) noexcept {
  return counted_memalign(alignment, size, __builtin_return_address(0));
}

int posix_memalign(void** out, std::size_t alignment, std::size_t size) noexcept {
  if (alignment < sizeof(void*) || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = counted_memalign(alignment, size, __builtin_return_address(0));
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

}  // extern "C"

namespace {

void* new_or_throw(std::size_t size) {
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}

void* new_aligned_or_throw(std::size_t size, std::align_val_t al) {
  if (void* p = counted_memalign(static_cast<std::size_t>(al), size ? size : 1,
                                 __builtin_return_address(0)))
    return p;
  throw std::bad_alloc();
}

}  // namespace

void* operator new(std::size_t n) { return new_or_throw(n); }
void* operator new[](std::size_t n) { return new_or_throw(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n, std::align_val_t al) { return new_aligned_or_throw(n, al); }
void* operator new[](std::size_t n, std::align_val_t al) { return new_aligned_or_throw(n, al); }
void* operator new(std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_memalign(static_cast<std::size_t>(al), n ? n : 1, __builtin_return_address(0));
}
void* operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t&) noexcept {
  return counted_memalign(static_cast<std::size_t>(al), n ? n : 1, __builtin_return_address(0));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

// --- the test -------------------------------------------------------------------------------

namespace {

namespace asio = boost::asio;

constexpr std::string_view body =
    "trafficcop alloc_per_request: sixty-four bytes of a fixed body.\n";
static_assert(body.size() == 64);

// "GET <target> HTTP/1.1\r\nHost: x\r\n\r\n", built before anything is counted.
std::string request;

struct options {
  std::uint64_t requests = 10'000;
  std::uint64_t warmup = 2'000;
  std::uint64_t connections = 4;
  std::string target = "/small";
  double max = -1;          // < 0: no limit
  std::uint64_t sites = 0;  // print the proxy worker's top N aligned-allocation sites
};

/// Prints the usage; with `why` to stderr and exit status 2, without (--help) to stdout.
[[noreturn]] void usage(const char* argv0, const char* why) {
  if (why) std::fprintf(stderr, "%s: %s\n", argv0, why);
  std::fprintf(why ? stderr : stdout,
               "usage: %s [--requests N] [--warmup W] [--connections K] [--target T] "
               "[--max X] [--sites N]\n"
               "  --requests N     requests counted (default 10000)\n"
               "  --warmup W       requests before counting (default 2000)\n"
               "  --connections K  client keep-alive connections, one request in flight on "
               "each (default 4)\n"
               "  --target T       request target (default /small; a path or query longer "
               "than 15 bytes leaves std::string's inline buffer)\n"
               "  --max X          exit 1 if allocations per request exceed X (default: no "
               "limit)\n"
               "  --sites N        print the proxy worker's N most frequent aligned "
               "allocations by (caller address, size); `addr2line -Cfie BINARY ADDR` names "
               "the caller\n",
               argv0);
  std::exit(why ? 2 : 0);
}

options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--help" || a == "-h") usage(argv[0], nullptr);
    if (i + 1 >= argc) usage(argv[0], "missing value");
    const char* v = argv[++i];
    if (a == "--target") {
      o.target = v;
      if (o.target.empty() || o.target[0] != '/' ||
          o.target.find_first_of(" \r\n") != std::string::npos)
        usage(argv[0], "--target: an origin-form target (/path?query)");
      continue;
    }
    char* end = nullptr;
    errno = 0;
    if (a == "--max") {
      o.max = std::strtod(v, &end);
      if (errno || end == v || *end || o.max < 0) usage(argv[0], "--max: not a number >= 0");
      continue;
    }
    unsigned long long n = std::strtoull(v, &end, 10);
    if (errno || end == v || *end || *v == '-') usage(argv[0], "not a non-negative integer");
    if (a == "--requests")
      o.requests = n;
    else if (a == "--warmup")
      o.warmup = n;
    else if (a == "--connections")
      o.connections = n;
    else if (a == "--sites")
      o.sites = n;
    else
      usage(argv[0], "unknown option");
  }
  if (o.requests == 0) usage(argv[0], "--requests must be at least 1");
  if (o.connections == 0 || o.connections > 1000)
    usage(argv[0], "--connections must be in 1..1000");
  return o;
}

/// The `n` most frequent (caller, size) pairs recorded by --sites, per request. The caller is
/// given as file + offset, for addr2line.
void print_sites(std::uint64_t n, std::uint64_t requests) {
  std::vector<site> top;
  for (const auto& st : sites)
    if (st.count > 0) top.push_back(st);
  std::sort(top.begin(), top.end(), [](const site& a, const site& b) { return a.count > b.count; });
  if (top.size() > n) top.resize(n);
  std::printf("proxy worker's aligned allocations by caller and size (per request):\n");
  for (const auto& st : top) {
    Dl_info info{};
    const char* file = "?";
    std::uintptr_t off = reinterpret_cast<std::uintptr_t>(st.caller);
    if (dladdr(st.caller, &info) && info.dli_fname) {
      file = info.dli_fname;
      off -= reinterpret_cast<std::uintptr_t>(info.dli_fbase);
    }
    std::printf("  %6.2f  %5zu B  %s +0x%llx\n",
                static_cast<double>(st.count) / static_cast<double>(requests), st.size, file,
                static_cast<unsigned long long>(off));
  }
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "alloc_per_request: FAILED: %s\n", what);
  std::exit(1);
}

[[noreturn]] void fail_errno(const char* what) {
  std::fprintf(stderr, "alloc_per_request: FAILED: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

/// One blocking client connection with a fixed buffer: nothing allocates per request.
struct client_conn {
  int fd = -1;
  char buf[4096];
  std::size_t have = 0;
};

void connect_client(client_conn& c, std::uint16_t port) {
  c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (c.fd < 0) fail_errno("socket");
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{10, 0};  // a stuck proxy fails the run instead of hanging it
  ::setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) fail_errno("connect");
}

void send_request(client_conn& c) {
  std::size_t off = 0;
  while (off < request.size()) {
    ssize_t n = ::send(c.fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) fail_errno("send");
    off += static_cast<std::size_t>(n);
  }
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i], b = prefix[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

/// Reads one whole response and checks it: 200, Content-Length 64, the exact body, and no
/// byte after it (one request is in flight per connection).
void read_response(client_conn& c) {
  std::size_t head_len = 0;
  std::size_t total = 0;
  for (;;) {
    if (head_len == 0) {
      std::string_view got(c.buf, c.have);
      auto end = got.find("\r\n\r\n");
      if (end != std::string_view::npos) {
        head_len = end + 4;
        std::string_view head = got.substr(0, head_len);
        if (!head.starts_with("HTTP/1.1 200 ")) fail("the response is not HTTP/1.1 200");
        std::size_t length = SIZE_MAX;
        std::size_t pos = head.find("\r\n") + 2;
        while (pos < head_len - 2) {
          auto eol = head.find("\r\n", pos);
          std::string_view line = head.substr(pos, eol - pos);
          if (iequals_prefix(line, "transfer-encoding:"))
            fail("the response is chunked, expected Content-Length");
          if (iequals_prefix(line, "content-length:")) {
            std::string_view v = line.substr(15);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
            std::size_t n = 0;
            if (v.empty() || v.size() > 9) fail("bad Content-Length");
            for (char ch : v) {
              if (ch < '0' || ch > '9') fail("bad Content-Length");
              n = n * 10 + static_cast<std::size_t>(ch - '0');
            }
            if (length != SIZE_MAX) fail("two Content-Length fields");
            length = n;
          }
          pos = eol + 2;
        }
        if (length != body.size()) fail("Content-Length is missing or not 64");
        total = head_len + length;
      }
    }
    if (total != 0 && c.have >= total) break;
    if (c.have == sizeof c.buf) fail("response larger than 4 KiB");
    ssize_t n = ::recv(c.fd, c.buf + c.have, sizeof c.buf - c.have, 0);
    if (n == 0) fail("the proxy closed a keep-alive connection");
    if (n < 0) fail_errno("recv (timeout: 10 s)");
    c.have += static_cast<std::size_t>(n);
  }
  if (c.have != total) fail("bytes after the response");
  if (std::string_view(c.buf + head_len, body.size()) != body) fail("the body differs");
  c.have = 0;
}

/// `n` requests, round-robin over the connections: one request sent on each, then each
/// response read, so up to K requests are in flight at once.
void run_requests(std::vector<client_conn>& conns, std::uint64_t n) {
  while (n > 0) {
    std::size_t batch = n < conns.size() ? static_cast<std::size_t>(n) : conns.size();
    for (std::size_t i = 0; i < batch; ++i) send_request(conns[i]);
    for (std::size_t i = 0; i < batch; ++i) read_response(conns[i]);
    n -= batch;
  }
}

asio::awaitable<void> upstream_handler(trafficcop::response_writer& w, trafficcop::request&) {
  role = role_upstream;  // this worker thread's allocations go to the upstream's column
  auto ec = co_await trafficcop::write_text(w, 200, body);
  (void)ec;
}

std::uint16_t start(trafficcop::server& srv, const char* name) {
  std::string what;
  if (auto ec = srv.start(what)) {
    std::fprintf(stderr, "alloc_per_request: FAILED: %s server: %s: %s\n", name, what.c_str(),
                 ec.message().c_str());
    std::exit(1);
  }
  return srv.local_endpoints().at(0).port();
}

}  // namespace

int main(int argc, char** argv) {
  role = role_client;
  const options o = parse_options(argc, argv);
  request = "GET " + o.target + " HTTP/1.1\r\nHost: x\r\n\r\n";

  trafficcop::server upstream({.listen = {"127.0.0.1:0"}, .workers = 1}, upstream_handler);
  const std::uint16_t upstream_port = start(upstream, "upstream");
  trafficcop::server proxy({.listen = {"127.0.0.1:0"}, .workers = 1},
                           trafficcop::make_reverse_proxy(
                               {.upstream = "http://127.0.0.1:" + std::to_string(upstream_port)}));
  const std::uint16_t proxy_port = start(proxy, "proxy");

  std::vector<client_conn> conns(static_cast<std::size_t>(o.connections));
  for (auto& c : conns) connect_client(c, proxy_port);

  // Starting two servers allocates: a zero here means the counting functions are not the ones
  // the process calls (e.g. a static link), and any figure below would be meaningless.
  const std::uint64_t at_start = allocations.load(std::memory_order_relaxed);
  if (at_start == 0) fail("no allocation was counted at start-up: the counter is not wired");

  run_requests(conns, o.warmup);

  std::uint64_t by_role_before[role_count];
  for (int r = 0; r < role_count; ++r)
    by_role_before[r] = allocations_by_role[r].load(std::memory_order_relaxed);
  const std::uint64_t frees_before = frees.load(std::memory_order_relaxed);
  const std::uint64_t aligned_before = aligned_allocations.load(std::memory_order_relaxed);
  const std::uint64_t before = allocations.load(std::memory_order_relaxed);
  const auto t0 = std::chrono::steady_clock::now();
  recording.store(o.sites > 0, std::memory_order_relaxed);

  run_requests(conns, o.requests);

  recording.store(false, std::memory_order_relaxed);
  const auto t1 = std::chrono::steady_clock::now();
  const std::uint64_t after = allocations.load(std::memory_order_relaxed);
  const std::uint64_t frees_after = frees.load(std::memory_order_relaxed);
  const std::uint64_t aligned_after = aligned_allocations.load(std::memory_order_relaxed);
  double per_role[role_count];
  for (int r = 0; r < role_count; ++r)
    per_role[r] = static_cast<double>(allocations_by_role[r].load(std::memory_order_relaxed) -
                                      by_role_before[r]) /
                  static_cast<double>(o.requests);

  for (auto& c : conns) ::close(c.fd);
  proxy.shutdown(std::chrono::seconds(1));
  proxy.wait();
  upstream.shutdown(std::chrono::seconds(1));
  upstream.wait();

  const std::uint64_t total = after - before;
  const double per_request = static_cast<double>(total) / static_cast<double>(o.requests);
  const double seconds = std::chrono::duration<double>(t1 - t0).count();
  std::printf("allocations per proxied request: %.2f (%llu requests, %llu connections)\n",
              per_request, static_cast<unsigned long long>(o.requests),
              static_cast<unsigned long long>(o.connections));
  if (o.target != "/small") std::printf("target: %s\n", o.target.c_str());
  std::printf(
      "total: %llu allocations, %llu frees over the %llu counted requests "
      "(after %llu warm-up requests; %llu allocations at start-up; %.0f req/s)\n",
      static_cast<unsigned long long>(total),
      static_cast<unsigned long long>(frees_after - frees_before),
      static_cast<unsigned long long>(o.requests), static_cast<unsigned long long>(o.warmup),
      static_cast<unsigned long long>(at_start),
      seconds > 0 ? static_cast<double>(o.requests) / seconds : 0.0);
  std::printf(
      "per request by thread: proxy worker (and any other thread) %.2f, "
      "upstream server %.2f, client %.2f\n",
      per_role[role_proxy], per_role[role_upstream], per_role[role_client]);
  std::printf(
      "per request by function: aligned_alloc/memalign/aligned new (Asio's coroutine frames "
      "and handlers) %.2f, malloc/calloc/realloc/new %.2f\n",
      static_cast<double>(aligned_after - aligned_before) / static_cast<double>(o.requests),
      static_cast<double>(total - (aligned_after - aligned_before)) /
          static_cast<double>(o.requests));
  if (o.sites > 0) print_sites(o.sites, o.requests);
  if (o.max >= 0 && per_request > o.max) {
    std::fprintf(stderr,
                 "alloc_per_request: FAILED: %.2f allocations per proxied request, more than "
                 "the limit of %.2f (--max)\n",
                 per_request, o.max);
    return 1;
  }
  return 0;
}
