// SPDX-License-Identifier: MIT
// The admin API's handler (admin.hpp).
#include "app/admin.hpp"
#include "app/json.hpp"

#include <cmath>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "http/rules.hpp"
#include "lb/cluster.hpp"
#include "upstream/dispatch.hpp"

namespace trafficcop::app {
namespace {

bool secret_key(std::string_view k) {
  return k == "key_file" || k.find("password") != std::string_view::npos ||
         k.find("secret") != std::string_view::npos || k.find("token") != std::string_view::npos;
}

/// A plain YAML scalar that JSON can carry as it is: a number, true, false or null.
bool json_literal(const YAML::Node& n) {
  if (n.Tag() != "?") return false;  // quoted: a string
  const auto& s = n.Scalar();
  if (s == "true" || s == "false" || s == "null") return true;
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size() && s.find_first_of("xXnN") == std::string::npos;
}

void to_json(std::string& out, const YAML::Node& n, bool redact) {
  if (redact && !n.IsMap() && !n.IsSequence()) return json_string(out, "<redacted>");
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : n) {
        if (!first) out += ',';
        first = false;
        auto key = kv.first.as<std::string>("");
        json_string(out, key);
        out += ':';
        to_json(out, kv.second, secret_key(key));
      }
      out += '}';
      return;
    }
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& v : n) {
        if (!first) out += ',';
        first = false;
        to_json(out, v, redact);
      }
      out += ']';
      return;
    }
    case YAML::NodeType::Scalar:
      if (json_literal(n))
        out += n.Scalar();
      else
        json_string(out, n.Scalar());
      return;
    default:
      out += "null";
  }
}

std::string upstreams_json(const std::vector<upstream_runtime>& ups) {
  std::string out = "{\"upstreams\":[";
  auto now = lb::clock::now();
  bool first_up = true;
  for (const auto& u : ups) {
    if (!first_up) out += ',';
    first_up = false;
    out += "{\"name\":";
    json_string(out, u.name);
    if (auto s = upstream::stats_of(*u.t))
      out += fmt::format(
          ",\"retries\":{},\"breaker_rejections\":{},\"circuit_open\":{},\"connections\":{},"
          "\"idle_connections\":{},\"requests_in_flight\":{}",
          s->retries, s->breaker_rejections, s->circuit_open, s->connections, s->idle, s->requests);
    out += ",\"endpoints\":[";
    bool first = true;
    for (const auto& e :
         u.cluster ? u.cluster->endpoints() : std::vector<std::shared_ptr<lb::endpoint>>{}) {
      std::uint64_t picks = 0, dones = 0, answered = 0, connect_failures = 0, errors = 0;
      double ewma = 0;
      int measured = 0;
      e->stats().each([&](const lb::endpoint_stats& s) {
        picks += s.picks.get();
        dones += s.dones.get();
        s.responses.each([&](int, std::uint64_t n) { answered += n; });
        connect_failures += s.connect_failures.get();
        errors += s.errors.get();
        if (double v = s.ewma_ns.load(std::memory_order_relaxed); v > 0) {
          ewma += v;
          ++measured;
        }
      });
      if (!first) out += ',';
      first = false;
      out += "{\"endpoint\":";
      json_string(out, e->authority());
      out += ",\"host\":";
      json_string(out, e->host());
      out += fmt::format(
          ",\"weight\":{},\"available\":{},\"health_check_up\":{},\"ejected\":{},"
          "\"in_flight\":{},\"responses\":{},\"connect_failures\":{},\"errors\":{}",
          e->weight(), e->available(now), e->healthy(), e->ejected(now),
          picks > dones ? picks - dones : 0, answered, connect_failures, errors);
      if (measured) out += fmt::format(",\"ewma_ms\":{:.3f}", ewma / measured / 1e6);
      out += '}';
    }
    out += "]}";
  }
  out += "]}\n";
  return out;
}

// Shaped like write_text (returns the error): an awaitable<void> version with
// `if (co_await ...) co_return;` spun in its final suspend under g++ 12 (cause not found).
asio::awaitable<error_code> reply(response_writer& w, int status, std::string_view type,
                                  std::string_view body) {
  w.header().set("Content-Type", type);
  w.header().set("Content-Length", std::to_string(body.size()));
  w.header().set("Cache-Control", "no-store");
  if (auto ec = co_await w.write_header(status)) co_return ec;
  if (!body.empty())
    if (auto ec = co_await w.write(asio::buffer(body.data(), body.size()))) co_return ec;
  co_return co_await w.flush();
}

constexpr std::string_view text = "text/plain; charset=utf-8";
constexpr std::string_view json = "application/json";

}  // namespace

std::string config_as_json(const std::string& yaml) {
  std::string out;
  try {
    to_json(out, YAML::Load(yaml), false);
  } catch (const std::exception&) {
    return "null";
  }
  return out;
}

handler admin_handler(std::shared_ptr<admin_state> s) {
  return [s](response_writer& w, request& in) -> asio::awaitable<void> {
    if (!s->allow.empty()) {
      // The TCP peer: the admin listener takes no PROXY header and trusts no X-Forwarded-For.
      error_code ec;
      auto ip = asio::ip::make_address(std::string(http::host_of(in.remote_addr)), ec);
      if (ec || !contains(s->allow, ip)) {
        co_await reply(w, 403, text, "Forbidden: not in admin.allow\n");
        co_return;
      }
    }
    auto path = in.path();
    bool get = in.method == "GET" || in.method == "HEAD";
    bool post = in.method == "POST";
    if (path == "/healthz" && get) {
      co_await reply(w, 200, text, "ok\n");
      co_return;
    }
    if (path == "/ready" && get) {
      if (s->draining.load()) {
        co_await reply(w, 503, text, "draining\n");
        co_return;
      }
      if (!s->ready.load()) {
        co_await reply(w, 503, text, "starting\n");
        co_return;
      }
      {
        co_await reply(w, 200, text, "ready\n");
        co_return;
      }
    }
    if (path == "/metrics" && get) {
      auto accept = in.header.get("accept").value_or("");
      bool om = accept.find("application/openmetrics-text") != std::string_view::npos;
      std::string body;
      {
        std::lock_guard l(s->mu);
        metrics::sources src{&s->upstreams, s->srv, &s->listeners, &s->process, s->version};
        body = s->m ? s->m->render(src, om) : std::string();
      }
      {
        co_await reply(w, 200,
                       om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                          : "text/plain; version=0.0.4; charset=utf-8",
                       body);
        co_return;
      }
    }
    if (path == "/config" && get) {
      std::string body;
      {
        std::lock_guard l(s->mu);
        body = s->config_json + "\n";
      }
      {
        co_await reply(w, 200, json, body);
        co_return;
      }
    }
    if (path == "/upstreams" && get) {
      std::string body;
      {
        std::lock_guard l(s->mu);
        body = upstreams_json(s->upstreams);
      }
      {
        co_await reply(w, 200, json, body);
        co_return;
      }
    }
    if (path == "/reload" && post) {
      // The reload runs on this (admin) thread: the answer comes once it is live, or failed.
      std::string errors = s->reload ? s->reload() : "reload is not available";
      if (errors.empty()) {
        co_await reply(w, 200, text, "reloaded\n");
        co_return;
      }
      {
        co_await reply(w, 400, text, errors);
        co_return;
      }
    }
    if (path == "/drain" && post) {
      s->draining = true;
      if (s->drain) s->drain();
      {
        co_await reply(w, 202, text, "draining\n");
        co_return;
      }
    }
    bool known = path == "/healthz" || path == "/ready" || path == "/metrics" ||
                 path == "/config" || path == "/upstreams" || path == "/reload" || path == "/drain";
    if (known) {
      w.header().set("Allow", path == "/reload" || path == "/drain" ? "POST" : "GET, HEAD");
      {
        co_await reply(w, 405, text, "Method Not Allowed\n");
        co_return;
      }
    }
    co_await reply(w, 404, text,
                   "Not Found: /metrics /healthz /ready /config /upstreams, POST /reload /drain\n");
  };
}

}  // namespace trafficcop::app
