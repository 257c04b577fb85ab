// SPDX-License-Identifier: MIT
// header_map and the small helpers of the HTTP model.
#include <algorithm>

#include "trafficcop/http.hpp"

namespace trafficcop {
namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

header_map& header_map::operator=(const header_map& o) {
  if (this == &o) return *this;
  size_ = 0;
  for (const auto& f : o) add(f.name, f.value);
  return *this;
}

void header_map::add(std::string_view name, std::string_view value) {
  if (size_ < fields_.size()) {
    auto& f = fields_[size_];
    f.name.assign(name);
    f.value.assign(value);
  } else {
    fields_.push_back({std::string(name), std::string(value)});
  }
  ++size_;
}

void header_map::set(std::string_view name, std::string_view value) {
  auto it = std::find_if(begin(), end(), [&](const field& f) { return iequals(f.name, name); });
  if (it == end()) {
    add(name, value);
    return;
  }
  it->value.assign(value);
  // Keep the first line's position; drop the others (std::remove_if moves, and moved strings
  // trade buffers, so no storage is lost).
  auto rest =
      std::remove_if(std::next(it), end(), [&](const field& f) { return iequals(f.name, name); });
  size_ -= static_cast<std::size_t>(end() - rest);
}

std::size_t header_map::erase(std::string_view name) {
  return erase_if([&](const field& f) { return iequals(f.name, name); });
}

std::optional<std::string_view> header_map::get(std::string_view name) const {
  for (const auto& f : *this)
    if (iequals(f.name, name)) return std::string_view(f.value);
  return std::nullopt;
}

std::string header_map::joined(std::string_view name) const {
  std::string out;
  for (const auto& f : *this) {
    if (!iequals(f.name, name)) continue;
    if (!out.empty()) out += ", ";
    out += f.value;
  }
  return out;
}

bool header_map::has_token(std::string_view name, std::string_view token) const {
  for (const auto& f : *this) {
    if (!iequals(f.name, name)) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      if (iequals(trim(v.substr(0, comma)), token)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

std::string_view request::path() const noexcept {
  std::string_view t = target;
  return t.substr(0, t.find('?'));
}

std::string_view request::raw_query() const noexcept {
  std::string_view t = target;
  auto q = t.find('?');
  return q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
}

}  // namespace trafficcop
