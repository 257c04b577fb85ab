// SPDX-License-Identifier: MIT
// header_map keeps its storage across clear/erase (the proxy reuses maps request after
// request); these tests pin the observable behaviour that must not change because of it.
#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

#include "trafficcop/http.hpp"

namespace trafficcop {
namespace {

using lines = std::vector<std::pair<std::string, std::string>>;

lines dump(const header_map& h) {
  lines out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

TEST(HeaderMap, ClearThenReuseShowsOnlyNewLines) {
  header_map h;
  h.add("A", "1");
  h.add("B", "a value longer than the small-string buffer of std::string");
  h.add("C", "3");
  h.clear();
  EXPECT_TRUE(h.empty());
  EXPECT_FALSE(h.get("B").has_value());
  h.add("D", "4");
  EXPECT_EQ(dump(h), (lines{{"D", "4"}}));
  EXPECT_EQ(h.size(), 1u);
}

TEST(HeaderMap, EraseKeepsOrderOfTheRest) {
  header_map h;
  for (auto [n, v] : lines{{"A", "1"}, {"x", "2"}, {"B", "3"}, {"X", "4"}, {"C", "5"}}) h.add(n, v);
  EXPECT_EQ(h.erase("X"), 2u);
  EXPECT_EQ(dump(h), (lines{{"A", "1"}, {"B", "3"}, {"C", "5"}}));
  h.add("D", "6");  // reuses a removed line's storage
  EXPECT_EQ(dump(h), (lines{{"A", "1"}, {"B", "3"}, {"C", "5"}, {"D", "6"}}));
}

TEST(HeaderMap, SetKeepsFirstPositionAndDropsRepeats) {
  header_map h;
  for (auto [n, v] : lines{{"A", "1"}, {"V", "2"}, {"B", "3"}, {"v", "4"}}) h.add(n, v);
  h.set("v", "new");
  EXPECT_EQ(dump(h), (lines{{"A", "1"}, {"V", "new"}, {"B", "3"}}));
  h.set("Z", "z");
  EXPECT_EQ(dump(h), (lines{{"A", "1"}, {"V", "new"}, {"B", "3"}, {"Z", "z"}}));
}

TEST(HeaderMap, CopyAssignReplacesEveryLine) {
  header_map big, small;
  for (int i = 0; i < 8; ++i) big.add("K" + std::to_string(i), std::to_string(i));
  small.add("S", "s");
  big = small;
  EXPECT_EQ(dump(big), (lines{{"S", "s"}}));
  header_map copy(big);
  EXPECT_EQ(dump(copy), dump(big));
}

TEST(HeaderMap, MoveLeavesSourceEmptyAndUsable) {
  header_map a, b;
  a.add("A", "1");
  b.add("B", "2");
  b.add("C", "3");
  a = std::move(b);
  EXPECT_EQ(dump(a), (lines{{"B", "2"}, {"C", "3"}}));
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): documented state
  b.add("D", "4");
  EXPECT_EQ(dump(b), (lines{{"D", "4"}}));
  header_map c(std::move(a));
  EXPECT_EQ(dump(c), (lines{{"B", "2"}, {"C", "3"}}));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(HeaderMap, EraseIfRemovesMatchingLines) {
  header_map h;
  for (auto [n, v] : lines{{"A", "1"}, {"B", "2"}, {"C", "3"}}) h.add(n, v);
  EXPECT_EQ(h.erase_if([](const header_map::field& f) { return f.value != "2"; }), 2u);
  EXPECT_EQ(dump(h), (lines{{"B", "2"}}));
}

TEST(IEquals, AsciiLettersFoldOtherBytesDoNot) {
  EXPECT_TRUE(iequals("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("Host", "Hos"));
  EXPECT_FALSE(iequals("Host", "Hosu"));
  // Pairs that differ in bit 0x20 alone but are not the two cases of a letter.
  EXPECT_FALSE(iequals("@", "`"));
  EXPECT_FALSE(iequals("[", "{"));
  EXPECT_FALSE(iequals("-", "\r"));
  EXPECT_FALSE(iequals("\xC0", "\xE0"));  // Latin-1 letters are not ASCII letters
  EXPECT_FALSE(iequals(std::string_view("x\0", 2), "x "));
  for (int c = 0; c < 256; ++c)
    for (int d = 0; d < 256; ++d) {
      const char a = static_cast<char>(c), b = static_cast<char>(d);
      const bool same = c == d || (c < 128 && d < 128 && std::tolower(c) == std::tolower(d));
      ASSERT_EQ(iequals(std::string_view(&a, 1), std::string_view(&b, 1)), same) << c << " " << d;
    }
}

}  // namespace
}  // namespace trafficcop
