// SPDX-License-Identifier: MIT
// trafficcop: command line parsing and wiring only (the work is in the libraries).
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "app/gateway.hpp"
#include "app/runtime.hpp"
#include "config/config.hpp"
#include "core/log.hpp"

namespace tc = trafficcop;

namespace {

struct cli_args {
  std::string config_file;
  std::string listen = "127.0.0.1:8080";
  std::string upstream;
  unsigned workers = 0;
  std::string upstream_timeout;
  std::string access_log = "-";
  std::string log_format = "json";
  std::string log_level = "info";
  std::string drain = "10s";
};

/// The five-line case, as a config: one listener, one upstream, one route "/".
std::string yaml_for_flags(const cli_args& a) {
  std::string y = "listeners:\n  - address: \"" + a.listen + "\"\n";
  y += "upstreams:\n  - name: upstream\n    url: \"" + a.upstream + "\"\n";
  if (!a.upstream_timeout.empty()) y += "    response_timeout: \"" + a.upstream_timeout + "\"\n";
  y += "routes:\n  - path_prefix: /\n    upstream: upstream\n";
  y += "workers: " + std::to_string(a.workers) + "\n";
  y += "access_log:\n  path: \"" + a.access_log + "\"\n  format: " + a.log_format + "\n";
  y += "timeouts:\n  drain: \"" + a.drain + "\"\n";
  return y;
}

/// Errors about the config built from flags name the flag, not a YAML path.
std::string flag_names(std::string e) {
  static const std::pair<std::string_view, std::string_view> names[] = {
      {"listeners[0].address", "--listen"},
      {"upstreams[0].url", "--upstream"},
      {"upstreams[0].response_timeout", "--upstream-timeout"},
      {"access_log.path", "--access-log"},
      {"access_log.format", "--access-log-format"},
      {"timeouts.drain", "--drain-timeout"},
      {"workers", "--workers"}};
  for (auto [path, flag] : names)
    if (e.starts_with(path)) return std::string(flag) + e.substr(path.size());
  return e;
}

int report(tc::config::load_result r, const std::string& source) {
  if (r.errors.empty() && r.cfg) r.errors = tc::app::check_files(*r.cfg);
  for (const auto& e : r.errors) {
    std::string msg = source == "command line" ? flag_names(e) : e;
    std::fprintf(stderr, "%s: %s\n", source.c_str(), msg.c_str());
  }
  return r.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "trafficcop: a reverse proxy.\n"
      "  trafficcop --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000\n"
      "  trafficcop -c trafficcop.yaml\n"
      "  trafficcop check -c trafficcop.yaml"};
  cli_args a;
  app.set_version_flag("--version", std::string("trafficcop ") + TRAFFICCOP_VERSION);
  app.add_option("-c,--config", a.config_file,
                 "YAML configuration file; with it, --listen, --workers, --upstream-timeout, "
                 "--access-log(-format) and --drain-timeout are errors (set them in the file)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", a.listen, "Listen address host:port")->capture_default_str();
  app.add_option("--upstream", a.upstream, "Upstream base URL, e.g. http://127.0.0.1:9000/base");
  app.add_option("--workers", a.workers, "Worker threads (0 = one per core)")
      ->capture_default_str();
  app.add_option(
      "--upstream-timeout", a.upstream_timeout,
      "Time to wait for the upstream's response headers (e.g. 3s, 250ms); expiry gives 504");
  app.add_option("--access-log", a.access_log, "Access log: a file path, - for stdout, or off")
      ->capture_default_str();
  app.add_option("--access-log-format", a.log_format, "json or combined")->capture_default_str();
  app.add_option("--drain-timeout", a.drain, "How long in-flight requests may finish on SIGTERM")
      ->capture_default_str();
  app.add_option("--log-level", a.log_level,
                 "Error log verbosity: trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.footer(
      "Signals:\n"
      "  SIGTERM, SIGINT  stop accepting, let requests in flight finish (up to --drain-timeout\n"
      "                   or timeouts.drain), then exit\n"
      "  SIGHUP           reload: the config file (-c) and the TLS certificates are read\n"
      "                   again; a config that fails keeps the running one\n"
      "  SIGUSR1          reopen the access log file (for logrotate)\n"
      "  SIGUSR2          upgrade: start the binary at the path it was started as, with the\n"
      "                   same arguments and the listening sockets; once it serves, stop\n"
      "                   accepting, drain and exit 0 (if it fails, keep serving)\n"
      "\n"
      "Listening sockets passed by systemd (LISTEN_FDS, a .socket unit) are served by the\n"
      "listeners whose address they are bound to; docs/operations.md has the details.\n"
      "\n"
      "Configuration reference: docs/config.md");
  auto* check = app.add_subcommand("check", "Validate a configuration file and exit");
  std::string check_file;
  check->add_option("-c,--config", check_file, "YAML configuration file")->required();
  CLI11_PARSE(app, argc, argv);

  tc::log::init(a.log_level);
  if (*check) {
    auto r = tc::config::load_file(check_file);
    if (int rc = report(r, check_file)) return rc;
    std::printf("%s\n", tc::config::summary(*r.cfg).c_str());
    return 0;
  }
  if (!a.config_file.empty() && !a.upstream.empty()) {
    std::fprintf(stderr, "trafficcop: use either -c FILE or --upstream URL, not both\n");
    return 2;
  }
  // The flags below only build the flags' own config; with -c they would be silently ignored.
  for (const char* flag : {"--listen", "--workers", "--upstream-timeout", "--access-log",
                           "--access-log-format", "--drain-timeout"})
    if (!a.config_file.empty() && app.count(flag) > 0) {
      std::fprintf(stderr, "trafficcop: %s is not used with -c FILE: set it in the file\n", flag);
      return 2;
    }
  tc::config::load_result r;
  std::string source, yaml;
  if (!a.config_file.empty()) {
    r = tc::config::load_file(a.config_file);
    source = a.config_file;
    std::ifstream f(a.config_file);
    yaml.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } else if (!a.upstream.empty()) {
    yaml = yaml_for_flags(a);
    r = tc::config::load_string(yaml, "command line");
    source = "command line";
  } else {
    std::fprintf(stderr,
                 "trafficcop: nothing to do: give --upstream URL or -c FILE (see --help)\n");
    return 2;
  }
  if (int rc = report(r, source)) return rc;
  tc::app::process_origin origin{tc::app::executable_path(argv[0]),
                                 std::vector<std::string>(argv, argv + argc)};
  return tc::app::run(*r.cfg, yaml, a.config_file, TRAFFICCOP_VERSION, origin);
}
