// SPDX-License-Identifier: MIT
// Request identity: the request id and the W3C Trace Context of each request, decided once
// before routing, so that the upstream, the client and the access log all see the same ones.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::app {

/// Wraps `next` (the router). Before it runs, per request:
///
/// Request id (`rid`): the client's `rid.header` value is kept in request::id when
/// `trust_incoming` is on, the request has exactly one such line and its value is sane
/// (http::is_sane_request_id); otherwise the id is generated (20 lowercase hex digits). With
/// `upstream`, that header of the request is set to the id (so the proxy sends it upstream,
/// replacing whatever the client sent); with `response`, the response's is set too (every
/// response: proxied, local, redirects and errors) and the upstream's own value of that
/// header is dropped by the proxies (gateway.cpp).
///
/// Trace Context (`tc`, https://www.w3.org/TR/trace-context/): one valid `traceparent` line is
/// continued: same trace id, a new span id as the parent-id sent upstream, the sampled flag
/// kept, `tracestate` passed on as received. A missing, invalid or repeated traceparent starts
/// a new trace (random ids, sampled per `tc.sampled`) and the client's tracestate is dropped
/// (§3.3: it belongs to the trace it came with). request::trace_id and ::span_id are set for
/// the access log. Disabled: both headers pass through untouched and the ids stay empty.
///
/// The middleware writes the request's header map itself, as the server would have received
/// them: the proxy's copy (spec 5) then carries them to every upstream, HTTP/1.1 or HTTP/2.
handler with_request_identity(handler next, const config::request_id& rid,
                              const config::trace_context& tc);

/// Random lowercase hex digits from a per-thread generator (seeded once per thread from
/// std::random_device): `digits` of them, never all '0'. For ids, not for secrets.
void random_hex(std::string& out, std::size_t digits);

}  // namespace trafficcop::app
