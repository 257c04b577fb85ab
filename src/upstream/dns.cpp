// SPDX-License-Identifier: MIT
// DNS queries and responses (dns.hpp).
#include "upstream/dns.hpp"

#include <arpa/inet.h>

#include <array>

namespace trafficcop::upstream::dns {
namespace {

constexpr std::size_t header_size = 12;
constexpr std::uint16_t class_in = 1;

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

/// Reads the message byte by byte; any read past the end sets `bad` and yields zeros.
struct reader {
  std::string_view m;
  std::size_t at = 0;
  bool bad = false;

  std::uint8_t u8() {
    if (at >= m.size()) {
      bad = true;
      return 0;
    }
    return static_cast<std::uint8_t>(m[at++]);
  }
  std::uint16_t u16() {
    std::uint16_t hi = u8();
    return static_cast<std::uint16_t>(hi << 8 | u8());
  }
  void skip(std::size_t n) {
    if (m.size() - at < n) {
      bad = true;
      at = m.size();
      return;
    }
    at += n;
  }
  /// Skips a name: labels up to the root, or up to a compression pointer (which ends it).
  void skip_name() {
    for (std::size_t labels = 0; !bad && labels < 128; ++labels) {
      std::uint8_t len = u8();
      if (len == 0) return;
      if ((len & 0xC0) == 0xC0) {
        u8();
        return;
      }
      if ((len & 0xC0) != 0) {
        bad = true;  // the 0x40 and 0x80 label types are obsolete
        return;
      }
      skip(len);
    }
    bad = true;
  }
  /// Reads an uncompressed name into lower-case dotted form (the question of our query).
  std::string name() {
    std::string out;
    for (std::size_t labels = 0; !bad && labels < 128; ++labels) {
      std::uint8_t len = u8();
      if (len == 0) return out;
      if ((len & 0xC0) != 0 || m.size() - at < len) {
        bad = true;
        break;
      }
      if (!out.empty()) out += '.';
      for (std::uint8_t i = 0; i < len; ++i) {
        char c = m[at++];
        out += c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
      }
    }
    bad = true;
    return {};
  }
};

std::string lower_without_root(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  std::string out(name);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

std::string make_query(std::string_view name, record_type type, std::uint16_t id) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return {};
  std::string q;
  put16(q, id);
  put16(q, 0x0100);  // a query, recursion desired
  put16(q, 1);       // one question
  put16(q, 0);
  put16(q, 0);
  put16(q, 0);
  while (!name.empty()) {
    auto dot = name.find('.');
    auto label = name.substr(0, dot);
    if (label.empty() || label.size() > 63) return {};
    q += static_cast<char>(label.size());
    q += label;
    name.remove_prefix(dot == std::string_view::npos ? name.size() : dot + 1);
    if (dot != std::string_view::npos && name.empty()) return {};  // "a..": an empty label
  }
  q += '\0';
  put16(q, static_cast<std::uint16_t>(type));
  put16(q, class_in);
  return q;
}

response parse_response(std::string_view msg, std::string_view name, record_type type,
                        std::uint16_t id) {
  response r;
  auto fail = [&](std::string why) {
    r.ok = false;
    r.addresses.clear();
    r.error = std::move(why);
    return r;
  };
  if (msg.size() < header_size) return fail("short DNS message");
  reader in{msg};
  std::uint16_t got_id = in.u16();
  std::uint16_t flags = in.u16();
  std::uint16_t qd = in.u16(), an = in.u16();
  in.skip(4);  // authority and additional counts: not read
  if (got_id != id) return fail("DNS answer to another query");
  if ((flags & 0x8000) == 0) return fail("DNS message is not a response");
  r.truncated = (flags & 0x0200) != 0;
  r.rcode = flags & 0x000F;
  if (qd != 1) return fail("DNS response without our question");
  std::string qname = in.name();
  std::uint16_t qtype = in.u16(), qclass = in.u16();
  if (in.bad || qname != lower_without_root(name) || qtype != static_cast<std::uint16_t>(type) ||
      qclass != class_in)
    return fail("DNS response to another question");
  for (std::uint16_t i = 0; i < an && !in.bad; ++i) {
    in.skip_name();
    std::uint16_t rtype = in.u16(), rclass = in.u16();
    in.skip(4);  // TTL: the refresh interval decides when to ask again
    std::uint16_t len = in.u16();
    if (in.bad || msg.size() - in.at < len) return fail("truncated DNS record");
    const char* data = msg.data() + in.at;
    in.skip(len);
    if (rtype != static_cast<std::uint16_t>(type) || rclass != class_in) continue;
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (type == record_type::a && len == 4) {
      inet_ntop(AF_INET, data, text.data(), text.size());
    } else if (type == record_type::aaaa && len == 16) {
      inet_ntop(AF_INET6, data, text.data(), text.size());
    } else {
      return fail("DNS record of a wrong length");
    }
    r.addresses.emplace_back(text.data());
  }
  if (in.bad) return fail("truncated DNS message");
  r.ok = true;
  return r;
}

}  // namespace trafficcop::upstream::dns
