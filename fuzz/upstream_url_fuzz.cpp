// SPDX-License-Identifier: MIT
// libFuzzer target: the two upstream URL parsers on arbitrary text: the library's
// parse_upstream_url (reverse_proxy_options::upstream) and the config loader's, which
// validates upstreams[].url and endpoints before the gateway hands them to the first.
//
// Beyond "no crash, no UB":
//   - every URL the config accepts, the library parses to the same scheme, host, port, path
//     and query (else a config that `trafficcop check` passes would fail every request);
//   - what the config accepts has a valid uri-host (http::is_valid_host) and a port 1-65535;
//   - the library's result is a fixed point: printing it back as scheme://host:port/path?query
//     and parsing that gives the same parts.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/loader.hpp"
#include "fuzz_check.hpp"
#include "http/rules.hpp"
#include "trafficcop/reverse_proxy.hpp"

namespace {

using trafficcop::fuzz::check;

std::string print(const trafficcop::upstream_url& u, bool with_query) {
  const bool bracket = u.host.find_first_of(":[]") != std::string::npos;
  std::string s = u.scheme + "://" + (bracket ? "[" + u.host + "]" : u.host) + ":" +
                  std::to_string(u.port) + u.path;
  if (with_query) s += "?" + u.query;
  return s;
}

bool same(const trafficcop::upstream_url& a, const trafficcop::upstream_url& b) {
  return a.scheme == b.scheme && a.host == b.host && a.port == b.port && a.path == b.path &&
         a.query == b.query;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace config = trafficcop::config;
  if (size > 4096) return 0;
  const auto url = trafficcop::fuzz::as_text(data, size);

  const auto lib = trafficcop::parse_upstream_url(url);
  if (lib) {
    check(lib->scheme == "http" || lib->scheme == "https", "scheme is http or https", url);
    check(!lib->host.empty(), "a host", url);
    check(lib->port != 0, "port 0 is never an upstream", url);
    check(lib->path.empty() || lib->path.front() == '/', "the path starts with '/'", url);
    const auto again = trafficcop::parse_upstream_url(print(*lib, url.find('?') != url.npos));
    check(again && same(*again, *lib), "parse(print(parse(url))) == parse(url)", url);
  }

  config::upstream cu;
  if (!config::detail::parse_url(url, cu)) {
    check(lib.has_value(), "a URL the config accepts is one the proxy can parse", url);
    check(cu.scheme == lib->scheme && cu.host == lib->host && cu.port == lib->port &&
              cu.base_path == lib->path && cu.base_query == lib->query,
          "the config and the proxy read a URL the same way", url);
    const bool v6 = cu.host.find(':') != std::string::npos;
    check(trafficcop::http::is_valid_host(v6 ? "[" + cu.host + "]" : cu.host),
          "the config accepts valid hosts only", url);
    check(cu.port != 0, "the config refuses port 0", url);
  }
  return 0;
}
