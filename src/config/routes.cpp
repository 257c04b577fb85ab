// SPDX-License-Identifier: MIT
// The loader for routes[]: matchers, actions, rewrites, header edits, and the checks across routes.
#include "config/loader.hpp"

namespace trafficcop::config::detail {

void loader::read_route(const node& n, const std::string& path) {
  route& r = cfg_.routes.emplace_back();
  std::size_t errors_before = errors_.size();
  read_route_fields(n, path, r);
  if (errors_.size() != errors_before) return;
  check_route_combinations(n, path, r);
  if (errors_.size() != errors_before) return;
  check_route_shadowed(path, r);
}

void loader::read_route_fields(const node& n, const std::string& path, route& r) {
  auto host = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (!s.empty() && !is_route_host(s))
      return fail(at, quote(s) +
                          " is not a host name or a wildcard (no scheme, port or path; e.g. "
                          "example.com, *.example.com)");
    r.host = std::move(s);
  };
  auto a_path = [&](auto store) {
    return [this, store](const node& v, const std::string& at) {
      std::string s;
      if (!read(v, at, s)) return;
      if (auto err = check_path(s)) return fail(at, *err);
      store(std::move(s));
    };
  };
  auto regex = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (auto re = compile(s, at)) {
      r.path_regex = std::move(s);
      r.path_re = std::move(re);
    }
  };
  auto host_rewrite = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    host_port hp;
    if (auto err = split_host_port(s, hp)) return fail(at, *err);
    r.host_rewrite = std::move(s);
  };
  auto edits = [this](header_edits& e) -> handler {
    return [this, &e](const node& v, const std::string& at) { read_header_edits(v, at, e); };
  };
  auto matches = [&](auto& out, bool header_names) -> handler {
    return [this, &out, header_names](const node& v, const std::string& at) {
      read_value_matches(v, at, header_names, out);
    };
  };
  read_fields(
      n, path,
      {
          {"name",
           [&](auto& v, auto& at) {
             if (read_non_empty(v, at, r.name) && !route_names_.insert(r.name).second)
               fail(at, "duplicate route name " + quote(r.name));
           }},
          {"host", host},
          {"path", a_path([&](std::string s) { r.path = std::move(s); })},
          {"path_prefix", a_path([&](std::string s) { r.path_prefix = std::move(s); })},
          {"path_regex", regex},
          {"methods", [&](auto& v, auto& at) { read_methods(v, at, r.methods); }},
          {"headers", matches(r.headers, true)},
          {"query", matches(r.query, false)},
          {"listeners", [&](auto& v, auto& at) { read_route_listeners(v, at, r.listeners); }},
          {"upstream", [&](auto& v, auto& at) { read_non_empty(v, at, r.upstream); }},
          {"redirect", [&](auto& v, auto& at) { read_redirect(v, at, r); }},
          {"respond", [&](auto& v, auto& at) { read_respond(v, at, r); }},
          {"strip_prefix", into(r.strip_prefix)},
          {"prefix_rewrite", a_path([&](std::string s) { r.prefix_rewrite = std::move(s); })},
          {"host_rewrite", host_rewrite},
          {"host_header", into(r.host_header)},
          {"upstream_target", into(r.upstream_target)},
          {"flush_interval", into(r.flush_interval)},
          {"request_buffering", into_buffering(r.request_buffering)},
          {"request_headers", edits(r.request_headers)},
          {"response_headers", edits(r.response_headers)},
          {"rate_limits", [&](auto& v, auto& at) { read_route_rate_limits(v, at, r); }},
      });
}

/// What one key allows only with another, or only without it.
void loader::check_route_combinations(const node& n, const std::string& path, route& r) {
  // One path matcher: precedence between kinds is by kind, so a route cannot be two of them.
  std::vector<const char*> kinds;
  for (const char* k : {"path", "path_prefix", "path_regex"})
    if (has(n, k)) kinds.push_back(k);
  if (kinds.size() > 1)
    return fail(child(path, kinds[1]), std::string(kinds[0]) +
                                           " is given too; a route has one of path, path_prefix, "
                                           "path_regex");
  if (!kinds.empty() && std::string_view(kinds[0]) != "path_prefix") r.path_prefix.clear();

  // One action: an upstream, a redirect or a fixed response.
  std::vector<const char*> actions;
  for (const char* k : {"upstream", "redirect", "respond"})
    if (has(n, k)) actions.push_back(k);
  if (actions.empty())
    return fail(path, "needs one of upstream, redirect, respond (what to do with the request)");
  if (actions.size() > 1)
    return fail(child(path, actions[1]), std::string(actions[0]) +
                                             " is given too; a route has one of upstream, "
                                             "redirect, respond");
  if (r.upstream.empty()) {
    // Nothing is sent upstream: what shapes the upstream request has nothing to act on.
    for (const char* k :
         {"strip_prefix", "prefix_rewrite", "host_rewrite", "host_header", "upstream_target",
          "flush_interval", "request_buffering", "request_headers"})
      if (has(n, k))
        fail(child(path, k), std::string("applies to routes with an upstream only (this one has ") +
                                 actions[0] + ")");
    return;
  }

  bool path_rewrite = r.strip_prefix || !r.prefix_rewrite.empty();
  if (r.strip_prefix && !r.prefix_rewrite.empty())
    fail(child(path, "prefix_rewrite"),
         "strip_prefix is set too (strip_prefix: true is prefix_rewrite: /); give one");
  else if (path_rewrite && r.path_prefix.empty())
    fail(child(path, r.strip_prefix ? "strip_prefix" : "prefix_rewrite"),
         "applies to path_prefix routes only (it replaces the matched prefix)");
  else if (path_rewrite && r.upstream_target == target_policy::raw)
    fail(child(path, "upstream_target"),
         "raw sends the client's bytes, which a prefix rewrite would not change; use normalized");
  if (!r.host_rewrite.empty()) {
    if (r.host_header)
      fail(child(path, "host_header"), "host_rewrite is set too (it decides the Host sent)");
    if (edits_name(r.request_headers, "host"))
      fail(child(path, "request_headers"), "edits Host, which host_rewrite sets; give one");
  }
}

/// Routes with the same host and path matcher are tried in file order (docs/config.md): a
/// route after one that takes every request it would take can never match.
void loader::check_route_shadowed(const std::string& path, const route& r) {
  std::string key = to_lower(r.host) + '\0';
  if (r.path)
    key += "=" + *r.path;
  else if (r.path_regex)
    key += "~" + *r.path_regex;
  else
    key += "/" + r.path_prefix;
  route_group& same = route_keys_[key];
  // An earlier route with a header or query condition can only take every request of this one
  // if this one has that condition too: look among those filed under this one's conditions,
  // not at every earlier route (10,000 routes told apart by a header stay linear).
  std::vector<std::size_t> candidates = same.without_conditions;
  std::vector<std::string> conditions = condition_keys(r);
  for (const auto& c : conditions)
    if (auto it = same.by_condition.find(c); it != same.by_condition.end())
      candidates.insert(candidates.end(), it->second.begin(), it->second.end());
  std::sort(candidates.begin(), candidates.end());  // report the first in file order
  const char* kind = r.path ? "path" : r.path_regex ? "path_regex" : "path_prefix";
  for (std::size_t earlier : candidates) {
    const route& e = cfg_.routes[earlier];
    if (!takes_every_request_of(e, r)) continue;
    bool plain = e.methods.empty() && e.headers.empty() && e.query.empty() && e.listeners.empty();
    fail(path, "same host and " + std::string(kind) + " as " + element("routes", earlier) +
                   (plain ? ""
                          : ", whose methods, headers, query and listeners take every "
                            "request this one would") +
                   ", so it can never match");
    return;
  }
  std::size_t index = cfg_.routes.size() - 1;
  if (conditions.empty())
    same.without_conditions.push_back(index);
  else
    same.by_condition[conditions.front()].push_back(index);
}

regex_ptr loader::compile(const std::string& pattern, const std::string& path) {
  RE2::Options o;
  o.set_log_errors(false);  // the error goes into the message below, not to stderr
  auto re = std::make_shared<const RE2>(pattern, o);
  if (re->ok()) return re;
  fail(path, quote(pattern) + " is not a valid regular expression (RE2 syntax): " + re->error());
  return nullptr;
}

void loader::read_value_matches(const node& n, const std::string& path, bool header_names,
                                std::vector<std::pair<std::string, value_match>>& out) {
  // Header names are case-insensitive (RFC 9110 §5.1); query parameter names are not.
  for_each_entry(n, path, header_names, [&](const std::string& name, const node& v, auto& at) {
    if (header_names && !is_token(name))
      return fail(path, quote(name) + " is not a valid header name (RFC 9110 token)");
    if (name.empty()) return fail(path, "a parameter name must not be empty");
    value_match m;
    if (v.IsMap()) {
      read_fields(v, at,
                  {{"regex",
                    [&](const node& rv, const std::string& rat) {
                      if (!read_non_empty(rv, rat, m.regex_source)) return;
                      m.regex = compile(m.regex_source, rat);
                    },
                    true}});
      if (!m.regex) return;
    } else {
      auto value = scalar(v, at, "a value or {regex: ...}");
      if (!value) return;
      m.value = std::move(*value);
    }
    out.emplace_back(name, std::move(m));
  });
}

void loader::read_methods(const node& n, const std::string& path, std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    auto m = scalar(v, at, "a method name");
    if (!m) return;
    // RFC 9110 §9.1: methods are case-sensitive; "get" is not GET.
    bool upper = std::none_of(m->begin(), m->end(), [](char c) { return c >= 'a' && c <= 'z'; });
    if (!is_token(*m) || !upper)
      return fail(at, quote(*m) + " is not a method (an upper-case token such as GET)");
    if (std::find(out.begin(), out.end(), *m) != out.end())
      return fail(at, "duplicate method " + quote(*m));
    out.push_back(std::move(*m));
  });
  if (n.IsSequence() && n.size() == 0) fail(path, "must name at least one method (omit for any)");
}

void loader::read_route_listeners(const node& n, const std::string& path,
                                  std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (std::find(out.begin(), out.end(), s) != out.end())
      return fail(at, "duplicate listener " + quote(s));
    out.push_back(std::move(s));
  });
  if (n.IsSequence() && n.size() == 0) fail(path, "must name at least one listener (omit for all)");
}

void loader::read_redirect(const node& n, const std::string& path, route& r) {
  auto& rd = r.redirect.emplace();
  auto to = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (auto err = check_redirect_template(s)) return fail(at, *err);
    rd.to = std::move(s);
  };
  auto status = [&](const node& v, const std::string& at) {
    std::uint32_t code = 0;
    if (!read(v, at, code)) return;
    if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
      return fail(at, std::to_string(code) + " is not a redirect status (301, 302, 303, 307, 308)");
    rd.status = static_cast<int>(code);
  };
  read_fields(n, path, {{"to", to, true}, {"status", status}});
}

void loader::read_respond(const node& n, const std::string& path, route& r) {
  auto& rs = r.respond.emplace();
  auto status = [&](const node& v, const std::string& at) {
    std::uint32_t code = 0;
    if (!read(v, at, code)) return;
    if (code < 200 || code > 599) return fail(at, std::to_string(code) + " is not from 200 to 599");
    rs.status = static_cast<int>(code);
  };
  auto headers = [&](const node& v, const std::string& at) {
    read_header_values(v, at, rs.headers);
    // The server frames the response: these would contradict it.
    for (const auto& [name, value] : rs.headers)
      for (std::string_view framing : {"content-length", "transfer-encoding", "connection"})
        if (to_lower(name) == framing) fail(child(at, name), "is set by trafficcop from the body");
  };
  read_fields(n, path, {{"status", status}, {"body", into(rs.body)}, {"headers", headers}});
  // RFC 9110 §15.3.5, §15.4.5: no content in these.
  if ((rs.status == 204 || rs.status == 304) && !rs.body.empty())
    fail(child(path, "body"), "a " + std::to_string(rs.status) + " response has no body");
}

void loader::read_header_edits(const node& n, const std::string& path, header_edits& e) {
  read_fields(n, path,
              {
                  {"set", [&](auto& v, auto& at) { read_header_values(v, at, e.set); }},
                  {"add", [&](auto& v, auto& at) { read_header_values(v, at, e.add); }},
                  {"remove", [&](auto& v, auto& at) { read_header_names(v, at, e.remove); }},
              });
}

void loader::read_header_values(const node& n, const std::string& path,
                                std::vector<std::pair<std::string, std::string>>& out) {
  // Field names are case-insensitive (RFC 9110 §5.1): X-A and x-a are the same key.
  for_each_entry(n, path, true, [&](const std::string& name, const node& v, auto& at) {
    if (!is_token(name))
      return fail(path, quote(name) + " is not a valid header name (RFC 9110 token)");
    auto value = scalar(v, at, "a header value (use \"\" for an empty one)");
    if (!value) return;
    // RFC 9110 §5.5: a CR or LF would split the field and let the config smuggle a header.
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      return fail(at, "value must not contain CR, LF or NUL");
    out.emplace_back(name, std::move(*value));
  });
}

void loader::read_header_names(const node& n, const std::string& path,
                               std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    auto name = scalar(v, at, "a header name");
    if (!name) return;
    if (!is_token(*name))
      return fail(at, quote(*name) + " is not a valid header name (RFC 9110 token)");
    out.push_back(std::move(*name));
  });
}

void loader::check_route_upstreams() {
  if (mistyped_lists_.contains("upstreams")) return;  // every route would be reported
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const std::string& name = cfg_.routes[i].upstream;
    if (!name.empty() && !upstream_names_.contains(name))
      fail(element("routes", i) + ".upstream", "no upstream named " + quote(name));
  }
}

void loader::check_route_listeners() {
  if (mistyped_lists_.contains("listeners")) return;
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const auto& names = cfg_.routes[i].listeners;
    for (std::size_t j = 0; j < names.size(); ++j)
      if (!listener_names_.contains(names[j]))
        fail(element(element("routes", i) + ".listeners", j),
             "no listener named " + quote(names[j]) + " (listeners[].name)");
  }
}

/// A path rewrite changes the normalised path; the top-level `upstream_target: raw` would send
/// the client's bytes instead, so a route that rewrites must say `upstream_target: normalized`.
void loader::check_route_targets() {
  if (cfg_.upstream_target != target_policy::raw) return;
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const route& r = cfg_.routes[i];
    if ((r.strip_prefix || !r.prefix_rewrite.empty()) && !r.upstream_target)
      fail(element("routes", i) + (r.strip_prefix ? ".strip_prefix" : ".prefix_rewrite"),
           "the top-level upstream_target is raw, which a prefix rewrite would not change; set "
           "upstream_target: normalized on this route");
  }
}

}  // namespace trafficcop::config::detail
