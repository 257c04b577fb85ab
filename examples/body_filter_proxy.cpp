// SPDX-License-Identifier: MIT
// modify_response_async with a streaming body filter (Go: resp.Body = wrap(resp.Body)): text
// responses have every digit masked as they stream through; nothing is buffered whole.
//
//   body_filter_proxy 127.0.0.1:8080 http://127.0.0.1:9000
#include <cstdio>
#include <memory>
#include <string>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

using namespace trafficcop;

// Reads from the upstream's body and masks digits in place: one buffer, the proxy's own.
class mask_digits final : public body_reader {
 public:
  explicit mask_digits(body_reader& upstream) : upstream_(upstream) {}
  asio::awaitable<read_result> read(asio::mutable_buffer buf) override {
    auto r = co_await upstream_.read(buf);
    auto* p = static_cast<char*>(buf.data());
    for (std::size_t i = 0; i < r.n; ++i)
      if (p[i] >= '0' && p[i] <= '9') p[i] = '#';
    co_return r;
  }
  bool ready() const noexcept override { return upstream_.ready(); }

 private:
  body_reader& upstream_;
};

int main(int argc, char** argv) {
  if (argc != 3 || !parse_upstream_url(argv[2])) {
    std::fprintf(stderr, "usage: %s LISTEN_ADDR UPSTREAM_URL\n", argv[0]);
    return 2;
  }
  reverse_proxy_options opts{.upstream = argv[2]};
  // A coroutine: it could await another service before deciding. Text bodies are filtered;
  // their length is the same, so Content-Length stays true and is kept.
  opts.modify_response_async = [](upstream_response& res, const request&,
                                  response_body& body) -> asio::awaitable<error_code> {
    auto type = res.header.get("content-type");
    if (type && type->starts_with("text/"))
      body.replace(std::make_unique<mask_digits>(*body.reader), res.content_length);
    co_return error_code{};
  };
  server srv({.listen = {argv[1]}}, make_reverse_proxy(std::move(opts)));
  std::string what;
  if (auto ec = srv.run(what)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), ec.message().c_str());
    return 1;
  }
}
