// SPDX-License-Identifier: MIT
// Wiring of the server binary: a validated config becomes server options and one handler
// (access log → router → a reverse_proxy per route, with the route's header edits).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "app/metrics.hpp"
#include "app/rate_limit.hpp"
#include "config/config.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::app {

/// Where and how access-log lines go; thread-safe. Each worker thread batches its lines and
/// writes them out when its buffer holds 32 KiB, 100 ms after the first line of a batch, or
/// when the thread ends (graceful shutdown): one write(2) per batch instead of one per request.
/// Lines never interleave: O_APPEND on files; on pipes, writes of whole lines of at most
/// PIPE_BUF bytes.
class access_log_sink {
 public:
  /// `path`: "-" for stdout, or a file opened for append. Throws std::runtime_error naming the
  /// path if the file cannot be opened (start-up only). `fields`: config::access_log::fields.
  access_log_sink(const std::string& path, config::log_format format,
                  std::vector<config::log_field> fields = {});
  ~access_log_sink();
  access_log_sink(const access_log_sink&) = delete;
  access_log_sink& operator=(const access_log_sink&) = delete;

  /// Appends the line for a finished request to `line`.
  void format(std::string& line, const request& in, const response_writer& w,
              std::uint64_t bytes_in, std::chrono::steady_clock::duration total) const;
  /// Writes whole lines out now.
  void write_out(std::string_view lines) const;
  /// SIGUSR1 (logrotate): opens the path again and writes there from now on; safe while
  /// workers write. Lines still batched in a worker (at most 100 ms of them) go to the new
  /// file. Returns "" or what failed (the old file is then kept). Nothing to do on stdout.
  std::string reopen();

 private:
  int fd_;
  bool owns_fd_;
  bool atomic_appends_ = true;  // a regular file: one write(2) of any size stays whole
  config::log_format format_;
  std::vector<config::log_field> fields_;  // empty: the format's default
  std::string path_;
};

/// Wraps `next`: one access-log line per request, after it completed (status 499 when the
/// client left before the answer).
handler with_access_log(handler next, std::shared_ptr<access_log_sink> sink);

/// The router and proxies for `cfg` (no access log).
handler build_router(const config::config& cfg);

/// The router and proxies for `cfg`, counting requests in `m` when given, with the upstreams
/// it made (for metrics and the admin API). An upstream of `before` (the previous config's)
/// configured exactly the same is reused as it is. `h` runs the request identity middleware
/// (request_identity.hpp) before the router. `listener_ids`: the server's id of each of
/// `cfg.listeners` (server::update_listeners); empty: their indexes.
/// Rate limits (rate_limit.hpp) run per route before its handler; `before_limits` (the
/// previous generation's) keeps the limiters and redis store configured as before.
struct gateway {
  handler h;
  std::vector<upstream_runtime> upstreams;
  std::shared_ptr<const rate_limit_set> rate_limits;
};
gateway build_gateway(const config::config& cfg, metrics* m = nullptr,
                      const std::vector<upstream_runtime>& before = {},
                      const std::vector<std::size_t>& listener_ids = {},
                      const rate_limit_set* before_limits = nullptr);

server_options to_server_options(const config::config& cfg);

/// What the YAML loader cannot see: certificates and keys that do not load or do not match,
/// each with its YAML path ("upstreams[0].tls: key_file k.pem does not match cert_file ...").
std::vector<std::string> check_files(const config::config& cfg);

}  // namespace trafficcop::app
