// SPDX-License-Identifier: MIT
// The access log: a middleware that times the request and one line per request (JSON lines by
// default, or the combined log format with trafficcop's fields appended).
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "app/gateway.hpp"

namespace trafficcop::app {
namespace {

std::string_view proto_name(int version) {
  return version == 20 ? "HTTP/2.0" : version == 10 ? "HTTP/1.0" : "HTTP/1.1";
}

using clock = std::chrono::steady_clock;

/// Counts the request body bytes the inner handler reads.
class counting_body final : public body_reader {
 public:
  explicit counting_body(body_reader* inner) : inner_(inner) {}
  asio::awaitable<read_result> read(asio::mutable_buffer buf) override {
    auto r = co_await inner_->read(buf);
    bytes += r.n;
    co_return r;
  }
  body_reader* inner() const noexcept { return inner_; }
  std::uint64_t bytes = 0;

 private:
  body_reader* inner_;
};

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  out += '"';
}

/// Combined-log fields may not contain '"' or control bytes; escape them, and every byte from
/// 0x80 up, as \xHH: nginx's escaping, so that a line is ASCII whatever a client sent (a stray
/// byte is not taken for UTF-8 or for a terminal's control sequence by whoever reads the log).
/// The JSON format escapes only what JSON requires and leaves bytes >= 0x80 as they came.
std::string clf_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

std::string timestamp(bool clf) {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  if (clf) {
    std::strftime(buf, sizeof buf, "%d/%b/%Y:%H:%M:%S +0000", &tm);
    return buf;
  }
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

double ms(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e6; }

/// 499 when the client left before a response was complete (nginx's convention).
int logged_status(const request& in, const response_writer& w) {
  if (in.client_gone() && (w.status() == 0 || !w.head_sent())) return 499;
  return w.status() != 0 ? w.status() : (in.client_gone() ? 499 : 200);
}

}  // namespace

access_log_sink::access_log_sink(const std::string& path, config::log_format format)
    : fd_(STDOUT_FILENO), owns_fd_(false), format_(format) {
  if (path != "-") {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("access log " + path + ": " + std::strerror(errno));
    owns_fd_ = true;
  }
  struct stat st {};
  atomic_appends_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

access_log_sink::~access_log_sink() {
  if (owns_fd_) ::close(fd_);
}

void access_log_sink::format(std::string& line, const request& in, const response_writer& w,
                             std::uint64_t bytes_in, clock::duration total) const {
  auto& lf = const_cast<response_writer&>(w).log();
  int status = logged_status(in, w);
  std::string error = lf.error;
  if (status == 499 && error.empty()) error = "client went away";
  if (format_ == config::log_format::json) {
    line += "{\"time\":";
    json_string(line, timestamp(false));
    line += ",\"id\":";
    json_string(line, in.id);
    line += ",\"remote\":";
    json_string(line, in.remote_addr);
    line += ",\"method\":";
    json_string(line, in.method);
    line += ",\"target\":";
    json_string(line, in.target);
    fmt::format_to(std::back_inserter(line),
                   ",\"proto\":\"{}\",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},"
                   "\"duration_ms\":{:.3f},\"upstream\":",
                   proto_name(in.version), status, bytes_in, w.bytes_written(), ms(total));
    json_string(line, lf.upstream_addr);
    fmt::format_to(std::back_inserter(line),
                   ",\"upstream_status\":{},\"upstream_ms\":", lf.upstream_status);
    if (lf.upstream_latency.count() < 0)
      line += "null";
    else
      fmt::format_to(std::back_inserter(line), "{:.3f}", ms(lf.upstream_latency));
    fmt::format_to(std::back_inserter(line), ",\"tries\":{}", lf.tries);
    line += ",\"error\":";
    json_string(line, error);
    if (!in.tls_client.empty()) {  // mTLS: who the verified client certificate names
      line += ",\"tls_client\":";
      json_string(line, in.tls_client);
    }
    line += "}\n";
  } else {
    auto ip = in.remote_addr.substr(0, in.remote_addr.rfind(':'));
    fmt::format_to(std::back_inserter(line),
                   "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" id={} rt={:.3f} "
                   "upstream={} upstream_status={} urt={:.3f} bytes_in={}{}{}\n",
                   ip, timestamp(true), clf_escape(in.method), clf_escape(in.target),
                   proto_name(in.version), status, w.bytes_written(),
                   clf_escape(in.header.get("referer").value_or("-")),
                   clf_escape(in.header.get("user-agent").value_or("-")), in.id, ms(total) / 1000,
                   lf.upstream_addr.empty() ? "-" : lf.upstream_addr, lf.upstream_status,
                   ms(lf.upstream_latency) / 1000, bytes_in, error.empty() ? "" : " error=\"",
                   error.empty() ? "" : clf_escape(error) + "\"");
  }
}

void access_log_sink::write_out(std::string_view lines) const {
  // A file opened with O_APPEND takes each write(2) whole. A pipe only promises that for
  // writes up to PIPE_BUF, so there the batch goes out in pieces of whole lines that fit.
  while (!lines.empty()) {
    std::string_view piece = lines;
    if (!atomic_appends_ && piece.size() > PIPE_BUF) {
      auto cut = piece.substr(0, PIPE_BUF).rfind('\n');
      piece = piece.substr(0, cut == std::string_view::npos ? PIPE_BUF : cut + 1);
    }
    lines.remove_prefix(piece.size());
    while (!piece.empty()) {
      ssize_t n = ::write(fd_, piece.data(), piece.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a full disk or a closed pipe: the lines are dropped, not retried
      piece.remove_prefix(static_cast<std::size_t>(n));
    }
  }
}

namespace {

/// A worker thread's pending lines for one sink.
struct log_batch {
  explicit log_batch(std::shared_ptr<access_log_sink> s) : sink(std::move(s)) {}
  ~log_batch() { flush(); }  // thread exit: after a graceful shutdown drained the worker
  void flush() {
    if (!lines.empty()) sink->write_out(lines);
    lines.clear();
  }
  std::shared_ptr<access_log_sink> sink;
  std::string lines;
  std::unique_ptr<asio::steady_timer> timer;
  bool armed = false;
};

constexpr std::size_t batch_bytes = 32 * 1024;
constexpr auto batch_delay = std::chrono::milliseconds(100);

log_batch& batch_for(const std::shared_ptr<access_log_sink>& sink) {
  thread_local std::vector<std::unique_ptr<log_batch>> batches;  // one per sink, usually one
  for (auto& b : batches)
    if (b->sink == sink) return *b;
  return *batches.emplace_back(std::make_unique<log_batch>(sink));
}

void queue_line(const std::shared_ptr<access_log_sink>& sink, const request& in,
                const response_writer& w, std::uint64_t bytes_in, clock::duration total,
                const asio::any_io_executor& ex) {
  log_batch& b = batch_for(sink);
  sink->format(b.lines, in, w, bytes_in, total);
  if (b.lines.size() >= batch_bytes) {
    b.flush();
    return;
  }
  if (b.armed) return;
  if (!b.timer) b.timer = std::make_unique<asio::steady_timer>(ex);
  b.armed = true;
  b.timer->expires_after(batch_delay);
  b.timer->async_wait([bp = &b](error_code ec) {
    bp->armed = false;
    if (!ec) bp->flush();
  });
}

}  // namespace

handler with_access_log(handler next, std::shared_ptr<access_log_sink> sink) {
  return [next = std::move(next), sink = std::move(sink)](response_writer& w,
                                                          request& in) -> asio::awaitable<void> {
    auto start = clock::now();
    counting_body body(in.body);
    in.body = &body;
    co_await next(w, in);
    in.body = body.inner();  // `body` dies with this frame
    auto ex = co_await asio::this_coro::executor;
    queue_line(sink, in, w, body.bytes, clock::now() - start, ex);
  };
}

}  // namespace trafficcop::app
