// SPDX-License-Identifier: MIT
// The route table (router.hpp): built once per config, looked up once per request.
#include "app/router.hpp"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>

namespace trafficcop::app {
namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

int unhex(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/// A query component as Go's url.QueryUnescape reads it: '+' is a space, %XX a byte; a bad
/// escape is kept as written.
void unescape_query(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && unhex(s[i + 1]) >= 0 && unhex(s[i + 2]) >= 0) {
      out += static_cast<char>(unhex(s[i + 1]) * 16 + unhex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
}

bool value_holds(const config::value_match& m, std::string_view v) {
  if (m.regex) return RE2::FullMatch(v, *m.regex);
  return v == m.value;
}

std::string_view without_port(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    return h.substr(0, close == std::string_view::npos ? h.size() : close + 1);
  }
  if (auto colon = h.rfind(':'); colon != std::string_view::npos) return h.substr(0, colon);
  return h;
}

}  // namespace

void bare_host(std::string_view h, std::string& out) {
  h = without_port(h);
  if (h.size() > 1 && h.back() == '.') h.remove_suffix(1);  // "example.com." is example.com
  out.assign(h);
  for (auto& c : out) c = lower(c);
}

/// The regexes of one bucket as one RE2::Set, anchored at both ends like RE2::FullMatch.
struct route_table::regex_set {
  // From this many regexes on, one pass over the path beats trying them one by one.
  static constexpr std::size_t min_size = 4;
  // The set's DFA is built lazily while matching, and with thousands of patterns it can
  // outgrow RE2's default budget (8 MiB). Past this one Match() fails and the lookup falls
  // back to trying each regex: slower, never wrong.
  static constexpr std::int64_t max_mem = 64 << 20;

  re2::RE2::Set set;
  regex_set() : set(options(), re2::RE2::ANCHOR_BOTH) {}
  static re2::RE2::Options options() {
    re2::RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(max_mem);
    return o;
  }
};

void route_table::compile_sets(bucket& b) {
  if (b.regex.size() < regex_set::min_size) return;
  auto rs = std::make_shared<regex_set>();
  for (auto i : b.regex) {
    // Pattern n of the set is b.regex[n]. The options are those the loader compiled with
    // (UTF-8, case-sensitive); a pattern RE2 took alone it takes in a set.
    if (rs->set.Add(routes_[i].path_re->pattern(), nullptr) < 0) return;
  }
  if (!rs->set.Compile()) return;
  b.regexes = std::move(rs);
}

route_table::route_table(const std::vector<config::route>& routes,
                         const std::vector<config::listener>& listeners,
                         const std::vector<std::size_t>& ids) {
  routes_.reserve(routes.size());
  std::string host;
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const auto& r = routes[i];
    conditions& c = routes_.emplace_back();
    c.methods = r.methods;
    c.headers = r.headers;
    c.query = r.query;
    c.path_re = r.path_re;
    for (const auto& name : r.listeners)
      for (std::size_t l = 0; l < listeners.size(); ++l)
        if (listeners[l].name == name) c.listeners.push_back(l < ids.size() ? ids[l] : l);
    // A route limited to listeners whose names are not in this table matches nothing, not
    // everything (the loader rejects unknown names; this is for hand-built configs).
    if (!r.listeners.empty() && c.listeners.empty()) c.listeners.push_back(none);

    bucket* b = &any_;
    bare_host(r.host, host);
    if (host.starts_with("*."))
      b = &wildcards_[host.substr(2)];
    else if (!host.empty())
      b = &hosts_[host];
    auto index = static_cast<std::uint32_t>(i);
    if (r.path)
      b->exact[*r.path].push_back(index);
    else if (r.path_re)
      b->regex.push_back(index);
    else
      b->prefix[r.path_prefix].push_back(index);
  }
  compile_sets(any_);
  for (auto& [name, b] : hosts_) compile_sets(b);
  for (auto& [name, b] : wildcards_) compile_sets(b);
}

std::size_t route_table::match(const request& req) const {
  std::string_view path = req.path();
  if (!hosts_.empty() || !wildcards_.empty()) {
    thread_local std::string host;  // match() never suspends: one per thread is enough
    bare_host(req.host, host);
    if (auto it = hosts_.find(host); it != hosts_.end())
      if (auto r = match_in(it->second, path, req); r != none) return r;
    if (!wildcards_.empty()) {
      // "a.b.example.com": "b.example.com", then "example.com", then "com"; the label before
      // the suffix is never empty (dot > 0), so "*.example.com" does not take "example.com".
      std::string_view h = host;
      for (auto dot = h.find('.'); dot != std::string_view::npos && dot > 0;
           dot = h.find('.', dot + 1)) {
        auto it = wildcards_.find(h.substr(dot + 1));
        if (it == wildcards_.end()) continue;
        if (auto r = match_in(it->second, path, req); r != none) return r;
      }
    }
  }
  return match_in(any_, path, req);
}

std::size_t route_table::match_in(const bucket& b, std::string_view path,
                                  const request& req) const {
  if (!b.exact.empty())
    if (auto it = b.exact.find(path); it != b.exact.end())
      if (auto r = first_holding(it->second, req); r != none) return r;
  if (!b.regex.empty())
    if (auto r = match_regexes(b, path, req); r != none) return r;
  if (b.prefix.empty()) return none;
  // The prefixes that match `path` segment by segment are: the whole path, and at each '/'
  // the part before it and the part up to it ("/a/b": "/a/b", "/a/", "/a", "/"). Longest first.
  auto try_prefix = [&](std::size_t n) {
    auto it = b.prefix.find(path.substr(0, n));
    return it == b.prefix.end() ? none : first_holding(it->second, req);
  };
  if (auto r = try_prefix(path.size()); r != none) return r;
  for (auto slash = path.rfind('/'); slash != std::string_view::npos;
       slash = slash == 0 ? std::string_view::npos : path.rfind('/', slash - 1)) {
    if (slash + 1 < path.size())
      if (auto r = try_prefix(slash + 1); r != none) return r;
    if (slash > 0)
      if (auto r = try_prefix(slash); r != none) return r;
  }
  return none;
}

std::size_t route_table::match_regexes(const bucket& b, std::string_view path,
                                       const request& req) const {
  if (b.regexes) {
    thread_local std::vector<int> hits;  // match() never suspends: one per thread is enough
    hits.clear();
    re2::RE2::Set::ErrorInfo err{};
    if (b.regexes->set.Match(path, &hits, &err)) {
      std::sort(hits.begin(), hits.end());  // pattern order is file order
      for (int n : hits)
        if (auto i = b.regex[static_cast<std::size_t>(n)]; holds(routes_[i], req)) return i;
      return none;
    }
    if (err.kind == re2::RE2::Set::kNoError) return none;  // no pattern matched
    // Out of DFA memory: try each regex as below.
  }
  for (auto i : b.regex) {
    const conditions& c = routes_[i];
    if (RE2::FullMatch(path, *c.path_re) && holds(c, req)) return i;
  }
  return none;
}

std::size_t route_table::first_holding(const indexes& routes, const request& req) const {
  for (auto i : routes)
    if (holds(routes_[i], req)) return i;
  return none;
}

bool route_table::holds(const conditions& c, const request& req) const {
  if (!c.listeners.empty() &&
      std::find(c.listeners.begin(), c.listeners.end(), req.listener) == c.listeners.end())
    return false;
  if (!c.methods.empty() &&
      std::find(c.methods.begin(), c.methods.end(), req.method) == c.methods.end())
    return false;
  // A header condition holds when one line of the field has the value (repeated lines are
  // separate values, as they were received).
  for (const auto& [name, m] : c.headers) {
    bool found = false;
    for (const auto& f : req.header)
      if (iequals(f.name, name) && value_holds(m, f.value)) {
        found = true;
        break;
      }
    if (!found) return false;
  }
  if (c.query.empty()) return true;
  // A query condition holds when one parameter of that name has the value, both unescaped.
  thread_local std::string key, value;
  for (const auto& [name, m] : c.query) {
    bool found = false;
    std::string_view q = req.raw_query();
    while (!found && !q.empty()) {
      auto amp = q.find('&');
      std::string_view pair = q.substr(0, amp);
      q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
      auto eq = pair.find('=');
      unescape_query(pair.substr(0, eq), key);
      if (key != name) continue;
      unescape_query(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                     value);
      found = value_holds(m, value);
    }
    if (!found) return false;
  }
  return true;
}

std::pair<std::size_t, std::string_view> prefix_rewrite(std::string_view path,
                                                        std::string_view prefix,
                                                        std::string_view replacement) {
  // The result is always `replacement` + the rest of the path with one '/' at the seam; what
  // changes is how much of the path that replaces.
  std::string_view rest = path.substr(std::min(prefix.size(), path.size()));
  bool joins = !replacement.empty() && replacement.back() == '/';
  std::size_t n = prefix.size();
  if (joins && rest.starts_with('/'))
    ++n;  // "/v2/" + "x", not "/v2/" + "/x"
  else if (!joins && !rest.empty() && !rest.starts_with('/'))
    --n;  // the prefix ended with '/': keep it as the seam, "/v2" + "/x"
  return {n, replacement};
}

std::string redirect_location(std::string_view to, const request& req) {
  std::string out;
  out.reserve(to.size() + req.raw_target.size() + req.host.size());
  while (!to.empty()) {
    auto open = to.find('{');
    out += to.substr(0, open);
    if (open == std::string_view::npos) break;
    auto close = to.find('}', open);
    std::string_view name = to.substr(open, close + 1 - open);
    to.remove_prefix(close + 1);
    if (name == "{scheme}") {
      out += req.tls ? "https" : "http";
    } else if (name == "{host}") {
      // HTTP/1.0 may come without Host: the address the client reached is the next best name.
      std::string_view h = without_port(req.host);
      out += h.empty() ? without_port(req.local_addr) : h;
    } else if (name == "{path}") {
      out += req.raw_target.empty() ? req.target : req.raw_target;
    }
  }
  return out;
}

}  // namespace trafficcop::app
