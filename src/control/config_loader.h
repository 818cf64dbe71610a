// control/: configuration (YAML -> validated immutable snapshot), reload, admin
// endpoints, signals, process supervision.
//
// The config loader turns a YAML document into a gateway::Settings with every
// default resolved, or into one precise error:
//
//   FILE:LINE:COL: <key path, e.g. upstreams[1].endpoints[0]>: <what is wrong and what is expected>
//
// Every error is Errc::kInvalid (including an unreadable file). Schema, units
// and limits are documented in examples/*.yaml; in short:
//   sizes      integer bytes, or "64KiB" (B, KB, MB, GB = powers of 1000; KiB, MiB, GiB = of 1024)
//   durations  integer milliseconds, or "250ms", "10s", "2m", "1h"; > 0 and at most 8760h
//   timeouts   resolve field by field: built-in defaults <- `timeouts` <- upstream <- model
// The loader reads the environment (api_key_env) and the filesystem (tls.ca_file
// must be readable; an access_log file's directory must exist), so a snapshot
// that loads is one the gateway can start with.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "gateway/settings.h"

namespace sluice::control {

struct LoadOptions {
  // `--check-config`: an unset api_key_env variable is a warning in
  // Settings::warnings instead of an error, so configs validate without secrets.
  bool check_only = false;
  // Command-line overrides (--listen, --admin, --workers, --access-log). They
  // replace the config's values and pass the same checks; errors name the flag.
  std::optional<std::string> listen, admin_listen, workers, access_log;
};

// Reads and validates the YAML file at `path`; error positions name `path`.
Result<gateway::Settings> load_config_file(const std::string& path, const LoadOptions& options = {});

// Validates YAML text; error positions and Settings::source name `source_name`.
Result<gateway::Settings> load_config_string(std::string_view yaml, std::string_view source_name,
                                             const LoadOptions& options = {});

// The embedded default with `options` applied (overrides can still be wrong).
Result<gateway::Settings> load_embedded_default(const LoadOptions& options);

// What `sluice` runs with no --config: listen 0.0.0.0:8080, admin 127.0.0.1:9901,
// one upstream "mock" with endpoint builtin:mock, one route "*" -> mock. Parsed
// from embedded YAML by the same loader; source is "<embedded default>".
gateway::Settings embedded_default_settings();

// The YAML behind embedded_default_settings(), e.g. for `sluice --print-default-config`.
std::string_view embedded_default_yaml();

}  // namespace sluice::control
