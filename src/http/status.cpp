// SPDX-License-Identifier: MIT
// Reason phrases (RFC 9110 §15) and the small-response helper.
#include "trafficcop/http.hpp"

namespace trafficcop {

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

asio::awaitable<error_code> write_text(response_writer& w, int status, std::string_view body) {
  w.header().set("Content-Type", "text/plain; charset=utf-8");
  w.header().set("Content-Length", std::to_string(body.size()));
  if (auto ec = co_await w.write_header(status)) co_return ec;
  if (!body.empty())
    if (auto ec = co_await w.write(asio::buffer(body.data(), body.size()))) co_return ec;
  co_return co_await w.flush();
}

}  // namespace trafficcop
