// SPDX-License-Identifier: MIT
// outbound_request's URL parts, SetURL and SetXForwarded (Go 1.20's ProxyRequest).
#include "http/rules.hpp"
#include "trafficcop/transport.hpp"

namespace trafficcop {

std::string_view outbound_request::path() const noexcept {
  return std::string_view(target).substr(0, target.find('?'));
}

std::string_view outbound_request::raw_query() const noexcept {
  auto q = target.find('?');
  return q == std::string::npos ? std::string_view() : std::string_view(target).substr(q + 1);
}

void outbound_request::set_path(std::string_view raw_path) {
  target.replace(0, path().size(), raw_path);
}

void outbound_request::set_raw_query(std::string_view raw_query) {
  target.resize(path().size());
  if (!raw_query.empty()) target.append("?").append(raw_query);
}

void outbound_request::set_url(const upstream_url& base) {
  std::string_view from = inbound ? std::string_view(inbound->target) : std::string_view(target);
  std::string_view in_path = from.substr(0, from.find('?'));
  std::string_view in_query = from.substr(std::min(from.size(), in_path.size() + 1));
  std::string joined = http::join_path(base.path, in_path);
  std::string query = http::merge_query(base.query, in_query);
  if (auto clean = http::sanitize_query(query)) query = std::move(*clean);  // spec 4
  if (!query.empty()) joined.append("?").append(query);
  target = std::move(joined);

  scheme = base.scheme;
  host = base.host;
  port = base.port;
  address.clear();
  std::string authority = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (scheme == "https" ? 443 : 80)) authority += ":" + std::to_string(port);
  header.set("Host", authority);
}

void outbound_request::set_xforwarded() {
  if (!inbound) return;
  const request& in = *inbound;
  for (auto name : {"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"}) header.erase(name);
  for (const auto& f : in.header)
    if (iequals(f.name, "x-forwarded-for")) header.add(f.name, f.value);
  http::apply_forwarded(header, in.remote_addr, in.host, in.tls, http::forwarded_mode::append,
                        in.peer_addr, in.forwarded_trusted);
}

}  // namespace trafficcop
