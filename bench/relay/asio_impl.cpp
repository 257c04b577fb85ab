// SPDX-License-Identifier: MIT
// Asio's implementation, compiled once per relay binary (BOOST_ASIO_SEPARATE_COMPILATION), as
// trafficcop's src/core/asio_impl.cpp: the relay's TU calls into the scheduler, no inlining.
#include <boost/asio/impl/src.hpp>
