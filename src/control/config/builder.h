// control/config/: the config loader, one file per top-level section.
//
// config_loader.cc parses the document and walks its top level in order;
// each section's reader below validates its part into the Settings being
// built, using the shared field readers in reader.h. Order matters where one
// section resolves against another: timeouts before upstreams (their
// defaults), upstreams before models and default_upstream (names they refer to).
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

#include "control/config/reader.h"
#include "control/config_loader.h"
#include "gateway/settings.h"

namespace sluice::control::config {

// One document being turned into Settings: what every section reads with,
// what it fills, and the little one section leaves for a later one.
struct Builder {
  const Reader& r;
  const LoadOptions& options;
  gateway::Settings s;
  Field tls_listen_field;                                  // server.tls.listen, for apply_overrides()
  std::unordered_map<std::string, size_t> upstream_index;  // name -> index in s.upstreams
};

// server.cc
void read_server(Builder& b, const Field& f);
// Command-line overrides replace the config's values and pass the same
// checks; then the listeners are checked against each other, wherever
// their addresses came from. `server` is the config's section, if any.
void apply_overrides(Builder& b, const Field* server);

// upstreams.cc
// Overrides the fields present in `f`, leaving the others as inherited.
void read_timeouts(const Reader& r, const Field& f, gateway::Timeouts& t);
void read_upstreams(Builder& b, const Field& f);

// admission.cc
// Also compiles the header rules with server.max_header_value_bytes, so it
// runs after read_server() (with `f` null when there is no section).
void read_admission(Builder& b, const Field* f);
// {max, queue, queue_timeout, status}: admission, each upstream, each model.
void read_concurrency(const Reader& r, const Field& f, gateway::Concurrency& c);

// auth.cc
void read_auth(Builder& b, const Field& f);
void read_pricing(Builder& b, const Field& f);
// `limits`: the backend of key and team limits, and the output tokens
// reserved for requests without max_tokens.
void read_limits_section(Builder& b, const Field& f);

// models.cc
void read_models(Builder& b, const Field& f);
void read_default_upstream(Builder& b, const Field& f);

}  // namespace sluice::control::config
