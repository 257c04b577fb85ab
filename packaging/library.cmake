# The library as an installable package (issue 13): `cmake --install` puts the public headers,
# the three static libraries, a CMake package and a pkg-config file under the prefix. They
# are the `dev` component, so that the .deb (the `Unspecified` component: the binary, its
# config, unit and man page) stays what it was.
#
#   find_package(trafficcop) + target_link_libraries(app PRIVATE trafficcop::trafficcop)
#
# brings the include path, the dependencies and the compile definitions every TU must share:
# BOOST_ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE is part of Asio's per-thread layout, and the
# SEPARATE_COMPILATION ones say that Asio and Beast are compiled in libtrafficcop_asio.
include(CMakePackageConfigHelpers)

set_target_properties(trafficcop_asio PROPERTIES EXPORT_NAME asio)
set_target_properties(trafficcop_http PROPERTIES EXPORT_NAME http)
set_target_properties(trafficcop PROPERTIES EXPORT_NAME trafficcop)

set(tc_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/trafficcop)
install(TARGETS trafficcop trafficcop_http trafficcop_asio EXPORT trafficcopTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/trafficcop
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev FILES_MATCHING PATTERN "*.hpp")
install(EXPORT trafficcopTargets NAMESPACE trafficcop:: DESTINATION ${tc_cmakedir}
        COMPONENT dev)
configure_package_config_file(${CMAKE_CURRENT_SOURCE_DIR}/trafficcopConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/trafficcopConfig.cmake INSTALL_DESTINATION ${tc_cmakedir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/trafficcopConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/trafficcopConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/trafficcopConfigVersion.cmake
        DESTINATION ${tc_cmakedir} COMPONENT dev)

# pkg-config: the same flags for builds that do not use CMake. The libraries are static, so
# what they link is in Requires (not Requires.private).
get_target_property(tc_defs trafficcop_asio INTERFACE_COMPILE_DEFINITIONS)
list(TRANSFORM tc_defs PREPEND "-D")
list(JOIN tc_defs " " TC_PC_DEFINITIONS)
# Relocatable: the prefix is found from the .pc file's own place (`cmake --install --prefix`).
file(RELATIVE_PATH TC_PC_PREFIX_FROM_PCFILEDIR /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" TC_PC_PREFIX_FROM_PCFILEDIR "${TC_PC_PREFIX_FROM_PCFILEDIR}")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/trafficcop.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/trafficcop.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/trafficcop.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
