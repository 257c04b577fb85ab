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
#include <span>
#include <stdexcept>

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include "app/counting_body.hpp"
#include "app/gateway.hpp"
#include "app/json.hpp"

namespace trafficcop::app {
namespace {

std::string_view proto_name(int version) {
  return version == 20 ? "HTTP/2.0" : version == 10 ? "HTTP/1.0" : "HTTP/1.1";
}

using clock = std::chrono::steady_clock;

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

access_log_sink::access_log_sink(const std::string& path, config::log_format format,
                                 std::vector<config::log_field> fields)
    : fd_(STDOUT_FILENO),
      owns_fd_(false),
      format_(format),
      fields_(std::move(fields)),
      path_(path) {
  if (path != "-") {
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error("access log " + path + ": " + std::strerror(errno));
    owns_fd_ = true;
  }
  struct stat st {};
  atomic_appends_ = ::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode);
}

std::string access_log_sink::reopen() {
  if (!owns_fd_) return {};  // stdout: whoever holds the other end rotates
  int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return path_ + ": " + std::strerror(errno);
  // dup3 swaps the file behind fd_ in one step: a write(2) racing with it, from a worker
  // flushing its batch, goes whole to the old file or whole to the new one, and fd_ is never
  // closed under it. So no line is lost, split or written to a closed descriptor.
  int rc = ::dup3(fd, fd_, O_CLOEXEC);
  int err = errno;
  ::close(fd);
  if (rc < 0) return path_ + ": " + std::strerror(err);
  return {};
}

access_log_sink::~access_log_sink() {
  if (owns_fd_) ::close(fd_);
}

namespace {

/// What a line is made of, gathered once per request.
struct line_context {
  const request& in;
  const response_writer& w;
  const response_writer::log_fields& lf;
  int status;
  const std::string& error;
  std::uint64_t bytes_in;
  clock::duration total;
};

std::string_view header_or_empty(const request& in, std::string_view name) {
  return in.header.get(name).value_or(std::string_view{});
}

/// A field's value as text (strings) or as a number written by `num`; `null` when it has none.
struct field_value {
  enum kind { text, number, null } k = text;
  std::string_view s;
  std::string owned;  // for computed text (time)
};

field_value value_of(config::log_field f, const line_context& c, std::string& num) {
  using F = config::log_field;
  auto text = [](std::string_view s) { return field_value{field_value::text, s, {}}; };
  auto integer = [&](std::int64_t v) {
    num.clear();
    fmt::format_to(std::back_inserter(num), "{}", v);
    return field_value{field_value::number, num, {}};
  };
  auto decimal = [&](double v) {  // milliseconds, to the microsecond
    num.clear();
    fmt::format_to(std::back_inserter(num), "{:.3f}", v);
    return field_value{field_value::number, num, {}};
  };
  switch (f) {
    case F::time: {
      field_value v{field_value::text, {}, timestamp(false)};
      return v;
    }
    case F::id:
      return text(c.in.id);
    case F::trace_id:
      return text(c.in.trace_id);
    case F::span_id:
      return text(c.in.span_id);
    case F::remote:
      return text(c.in.remote_addr);
    case F::host:
      return text(c.in.host);
    case F::method:
      return text(c.in.method);
    case F::target:
      return text(c.in.target);
    case F::proto:
    case F::protocol:
      return text(proto_name(c.in.version));
    case F::status:
      return integer(c.status);
    case F::bytes_in:
      return integer(static_cast<std::int64_t>(c.bytes_in));
    case F::bytes_out:
      return integer(static_cast<std::int64_t>(c.w.bytes_written()));
    case F::duration_ms:
      return decimal(ms(c.total));
    case F::upstream:
      return text(c.lf.upstream_addr);
    case F::endpoint:
      return text(c.lf.endpoint);
    case F::upstream_status:
      return integer(c.lf.upstream_status);
    case F::upstream_ms:
      if (c.lf.upstream_latency.count() < 0) return field_value{field_value::null, {}, {}};
      return decimal(ms(c.lf.upstream_latency));
    case F::tries:
      return integer(c.lf.tries);
    case F::error:
      return text(c.error);
    case F::user_agent:
      return text(header_or_empty(c.in, "user-agent"));
    case F::referer:
      return text(header_or_empty(c.in, "referer"));
    case F::tls_version:
      return text(c.in.tls_version);
    case F::tls_client:
      return text(c.in.tls_client);
    case F::rate_limit:
      return text(c.lf.rate_limit);
  }
  return text({});
}

/// The default JSON line: the keys of the first release in their order (tls_client only when
/// there is one), then those added since.
constexpr config::log_field default_json[] = {
    config::log_field::time,        config::log_field::id,
    config::log_field::remote,      config::log_field::method,
    config::log_field::target,      config::log_field::proto,
    config::log_field::status,      config::log_field::bytes_in,
    config::log_field::bytes_out,   config::log_field::duration_ms,
    config::log_field::upstream,    config::log_field::upstream_status,
    config::log_field::upstream_ms, config::log_field::tries,
    config::log_field::error,       config::log_field::tls_client,
    config::log_field::trace_id,    config::log_field::host,
    config::log_field::user_agent,  config::log_field::referer,
    config::log_field::tls_version, config::log_field::endpoint,
    config::log_field::rate_limit};

}  // namespace

void access_log_sink::format(std::string& line, const request& in, const response_writer& w,
                             std::uint64_t bytes_in, clock::duration total) const {
  auto& lf = const_cast<response_writer&>(w).log();
  int status = logged_status(in, w);
  std::string error = lf.error;
  if (status == 499 && error.empty()) error = "client went away";
  line_context c{in, w, lf, status, error, bytes_in, total};
  std::string num;
  if (format_ == config::log_format::json) {
    bool defaults = fields_.empty();
    std::span<const config::log_field> fields =
        defaults ? std::span<const config::log_field>(default_json) : fields_;
    char sep = '{';
    for (auto f : fields) {
      auto v = value_of(f, c, num);
      // Compatibility: the default line has had tls_client only on mTLS requests.
      if (defaults && f == config::log_field::tls_client && v.s.empty()) continue;
      // rate_limit (issue 11) only on requests a rate limit refused.
      if (defaults && f == config::log_field::rate_limit && v.s.empty()) continue;
      line += sep;
      sep = ',';
      line += '"';
      line += config::name(f);
      line += "\":";
      if (v.k == field_value::null)
        line += "null";
      else if (v.k == field_value::number)
        line += v.s;
      else
        json_string(line, v.owned.empty() ? v.s : std::string_view(v.owned));
    }
    line += "}\n";
    return;
  }
  auto ip = in.remote_addr.substr(0, in.remote_addr.rfind(':'));
  // urt: "-" when no upstream was asked (no route, a local answer), like nginx's
  // $upstream_response_time; it used to print the unset latency as -0.000.
  std::string urt = lf.upstream_latency.count() < 0
                        ? std::string("-")
                        : fmt::format("{:.3f}", ms(lf.upstream_latency) / 1000);
  fmt::format_to(
      std::back_inserter(line),
      "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" id={} rt={:.3f} "
      "upstream={} upstream_status={} urt={} bytes_in={}",
      ip, timestamp(true), clf_escape(in.method), clf_escape(in.target), proto_name(in.version),
      status, w.bytes_written(), clf_escape(in.header.get("referer").value_or("-")),
      clf_escape(in.header.get("user-agent").value_or("-")), in.id, ms(total) / 1000,
      lf.upstream_addr.empty() ? "-" : lf.upstream_addr, lf.upstream_status, urt, bytes_in);
  // `fields:` adds name=value pairs: numbers bare, text quoted and escaped, "-" for none.
  for (auto f : fields_) {
    auto v = value_of(f, c, num);
    std::string_view s = v.owned.empty() ? v.s : std::string_view(v.owned);
    line += ' ';
    line += config::name(f);
    line += '=';
    if (v.k == field_value::number)
      line += s;
    else if (v.k == field_value::null || s.empty())
      line += '-';
    else
      line += '"' + clf_escape(s) + '"';
  }
  if (!error.empty()) line += " error=\"" + clf_escape(error) + "\"";
  line += '\n';
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
