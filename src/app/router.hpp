// SPDX-License-Identifier: MIT
// The route table: which route of the config takes a request. Pure logic, no I/O.
//
// Lookup order (docs/config.md, "Precedence"):
//   host:  the exact host's routes, then each wildcard's from the longest suffix to the
//          shortest ("*.a.example.com" before "*.example.com"), then the routes without host;
//   path:  within one host, an exact `path`, then the `path_regex` routes in file order, then
//          the longest matching `path_prefix`;
//   among routes with the same host and path matcher, the first in file order whose methods,
//   headers, query and listeners all hold.
// The first route found wins; when none holds at one level the lookup goes on to the next.
//
// Each level is a hash lookup: exact hosts and wildcard suffixes by name (one probe per label
// of the request's host), exact paths by path, prefixes by each segment boundary of the path,
// longest first. The regexes of one host are matched in one pass when there are several (an
// RE2::Set: one DFA over the path, whatever their number), else one by one. A table of 10,000
// routes is looked up in about the time of a small one (bench/micro/router_bench.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "trafficcop/http.hpp"

namespace re2 {
class RE2;
}

namespace trafficcop::app {

class route_table {
 public:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);

  /// `routes` as validated by the config loader; `listeners` gives each listener's name, by
  /// its index in server_options::listen. `ids` is each listener's id (request::listener,
  /// server::update_listeners), by the same index; empty: the ids are the indexes.
  route_table(const std::vector<config::route>& routes,
              const std::vector<config::listener>& listeners,
              const std::vector<std::size_t>& ids = {});

  /// The index in `routes` of the route that takes `req`, or `none`. Allocates nothing once
  /// the thread has seen a host and query as long.
  std::size_t match(const request& req) const;

 private:
  struct sv_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  template <class V>
  using by_name = std::unordered_map<std::string, V, sv_hash, std::equal_to<>>;
  using indexes = std::vector<std::uint32_t>;  // routes, in file order

  struct regex_set;  // RE2::Set and what its pattern numbers are
  /// The routes of one host (or wildcard, or of any host), by path matcher.
  struct bucket {
    by_name<indexes> exact;
    indexes regex;
    std::shared_ptr<const regex_set> regexes;  // several regexes: all matched in one pass
    by_name<indexes> prefix;
  };

  /// What a route checks besides host and path.
  struct conditions {
    std::vector<std::string> methods;
    std::vector<std::pair<std::string, config::value_match>> headers;
    std::vector<std::pair<std::string, config::value_match>> query;
    std::vector<std::size_t> listeners;  // empty: every listener
    config::regex_ptr path_re;
  };

  void compile_sets(bucket& b);
  std::size_t match_in(const bucket& b, std::string_view path, const request& req) const;
  std::size_t match_regexes(const bucket& b, std::string_view path, const request& req) const;
  std::size_t first_holding(const indexes& routes, const request& req) const;
  bool holds(const conditions& c, const request& req) const;

  by_name<bucket> hosts_;
  by_name<bucket> wildcards_;  // by suffix: "*.example.com" → "example.com"
  bucket any_;
  std::vector<conditions> routes_;
};

/// Host without port and trailing dot, lower-cased, into `out`: "Example.COM.:8080" →
/// "example.com"; "[::1]:80" → "[::1]".
void bare_host(std::string_view host, std::string& out);

/// The path sent upstream by a route with `path_prefix: prefix` and `prefix_rewrite:
/// replacement` (`strip_prefix: true` is replacement "/"), for a `path` the prefix matched:
/// the prefix is replaced, and one '/' joins the replacement to the rest. ("/api", "/v2/"):
/// "/api/x" → "/v2/x", "/api" → "/v2/"; ("/api", "/"): "/api/x" → "/x", "/api" → "/".
/// Returned as how many leading bytes of `path` to replace, and by what (a view into
/// `replacement`), so that the caller can edit a target in place.
std::pair<std::size_t, std::string_view> prefix_rewrite(std::string_view path,
                                                        std::string_view prefix,
                                                        std::string_view replacement);

/// A redirect's Location: `to` with {scheme} ("http" or "https"), {host} (the request's host
/// without port; the listener's address if the request had none) and {path} (the target as
/// the client sent it, query included: nginx's $request_uri) expanded.
std::string redirect_location(std::string_view to, const request& req);

}  // namespace trafficcop::app
