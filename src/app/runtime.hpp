// SPDX-License-Identifier: MIT
// The running binary: the server on the live config, the admin API, and the signals that
// reload (SIGHUP) and stop (SIGTERM, SIGINT) it. docs/operations.md describes the behaviour.
#pragma once

#include <string>

#include "app/upgrade.hpp"
#include "config/config.hpp"

namespace trafficcop::app {

/// Serves `cfg` until SIGTERM or SIGINT, then drains; returns the exit status. `yaml` is the
/// config's text (for GET /config); `config_file` is re-read on reload ("" when the config
/// came from command-line flags: a reload then renews certificates only). SIGUSR2 starts
/// `origin` again with our listening sockets and, once it serves, drains and returns 0.
int run(const config::config& cfg, const std::string& yaml, const std::string& config_file,
        const std::string& version, const process_origin& origin);

}  // namespace trafficcop::app
