# The fuzz targets and what each links, shared by fuzz/CMakeLists.txt (libFuzzer builds) and
# tests/fuzz_replay (every build replays fuzz/corpus/<name>/ through <name>_fuzz.cpp).
# Add a target here, its source as fuzz/<name>_fuzz.cpp and its seeds in fuzz/corpus/<name>/.
set(TRAFFICCOP_FUZZ_TARGETS
  http1_request http1_response config target rules upstream_url h2_server h2_client
  trace_context proxy_protocol dns)
set(TRAFFICCOP_FUZZ_LIBS_http1_request trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_http1_response trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_config trafficcop_config)
set(TRAFFICCOP_FUZZ_LIBS_target trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_rules trafficcop_http PkgConfig::re2)
set(TRAFFICCOP_FUZZ_LIBS_upstream_url trafficcop trafficcop_config)
set(TRAFFICCOP_FUZZ_LIBS_h2_server trafficcop)
set(TRAFFICCOP_FUZZ_LIBS_h2_client trafficcop)
set(TRAFFICCOP_FUZZ_LIBS_trace_context trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_proxy_protocol trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_dns trafficcop)
