# The fuzz targets and what each links, shared by fuzz/CMakeLists.txt (libFuzzer builds) and
# tests/fuzz_replay (every build replays fuzz/corpus/<name>/ through <name>_fuzz.cpp).
# Add a target here, its source as fuzz/<name>_fuzz.cpp and its seeds in fuzz/corpus/<name>/.
set(TRAFFICCOP_FUZZ_TARGETS
  http1_request http1_response config target rules upstream_url h2_server h2_client
  trace_context proxy_protocol dns)
set(TRAFFICCOP_FUZZ_LIBS_http1_request trafficcop_http trafficcop_beast_oracle)
set(TRAFFICCOP_FUZZ_LIBS_http1_response trafficcop_http trafficcop_beast_oracle)
set(TRAFFICCOP_FUZZ_LIBS_config trafficcop_config)
set(TRAFFICCOP_FUZZ_LIBS_target trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_rules trafficcop_http PkgConfig::re2)
set(TRAFFICCOP_FUZZ_LIBS_upstream_url trafficcop trafficcop_config)
set(TRAFFICCOP_FUZZ_LIBS_h2_server trafficcop)
set(TRAFFICCOP_FUZZ_LIBS_h2_client trafficcop)
set(TRAFFICCOP_FUZZ_LIBS_trace_context trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_proxy_protocol trafficcop_http)
set(TRAFFICCOP_FUZZ_LIBS_dns trafficcop)

# The HTTP/1 targets' differential oracle: the Beast-based parsers the proxy used before its
# own (fuzz/beast_oracle.hpp). Fuzz targets, their replays and the unit tests link it; the
# proxy does not.
if(NOT TARGET trafficcop_beast_oracle)
  add_library(trafficcop_beast_oracle STATIC ${CMAKE_CURRENT_LIST_DIR}/beast_oracle.cpp)
  target_include_directories(trafficcop_beast_oracle PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(trafficcop_beast_oracle PUBLIC trafficcop_http)
endif()
