#include "control/config_loader.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "control/config/builder.h"

namespace sluice::control {
namespace {

using config::ConfigError;
using config::Field;
using config::Mapping;
using config::Reader;

constexpr std::string_view kEmbeddedSource = "<embedded default>";

// Kept minimal on purpose: everything not written here takes the defaults in
// gateway/settings.h, so the two cannot drift apart.
constexpr std::string_view kEmbeddedYaml =
    R"(# Sluice with no --config: the embedded mock model answers every model name.
server:
  listen: "0.0.0.0:8080"
  admin_listen: "127.0.0.1:9901"
upstreams:
  - name: mock
    endpoints: ["builtin:mock"]
models:
  - name: mock-1            # the mock's own model, listed by GET /v1/models
    upstream: mock
  - name: "*"               # any other name reaches the mock too
    upstream: mock
)";

// The document's top level; each section's reader lives in config/.
gateway::Settings build(const Reader& r, std::string_view source, const LoadOptions& options,
                        const YAML::Node& root) {
  config::Builder b{.r = r, .options = options};
  b.s.source = std::string(source);
  Field top{root, "", root.Mark(), root.Mark()};
  if (config::is_empty(root))
    r.fail(top, "the config is empty: expected a mapping with 'upstreams' and 'models'");
  Mapping m = r.mapping(top, {"server", "admission", "auth", "limits", "pricing", "timeouts", "upstreams", "models",
                              "default_upstream"});
  if (const Field* f = m.find("server")) config::read_server(b, *f);
  config::apply_overrides(b, m.find("server"));
  config::read_admission(b, m.find("admission"));
  if (const Field* f = m.find("auth")) config::read_auth(b, *f);
  if (const Field* f = m.find("limits")) config::read_limits_section(b, *f);
  if (const Field* f = m.find("pricing")) config::read_pricing(b, *f);
  if (const Field* f = m.find("timeouts")) config::read_timeouts(r, *f, b.s.default_timeouts);
  if (const Field* f = m.find("upstreams")) config::read_upstreams(b, *f);
  const Field* models = m.find("models");
  if (models) config::read_models(b, *models);
  if (b.s.models.empty())
    r.fail(models ? models->mark : root.Mark(), "models", "no models: add at least one route");
  if (const Field* f = m.find("default_upstream")) config::read_default_upstream(b, *f);
  b.s.index_models();
  return std::move(b.s);
}

Result<gateway::Settings> load(const std::string& yaml, std::string_view source, const LoadOptions& options) {
  Reader reader(source);
  try {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(yaml);
    } catch (const YAML::Exception& e) {
      reader.fail(e.mark, "", "invalid YAML: " + e.msg);
    }
    if (docs.size() > 1)
      reader.fail(docs[1].Mark(), "", "expected one YAML document, found several ('---')");
    YAML::Node root = docs.empty() ? YAML::Node() : docs[0];
    return build(reader, source, options, root);
  } catch (const ConfigError& e) {
    return Status(Errc::kInvalid, e.message);
  } catch (const YAML::Exception& e) {  // not expected: every access above is type-checked
    return Status(Errc::kInvalid, std::string(source) + ": " + e.what());
  }
}

}  // namespace

Result<gateway::Settings> load_config_string(std::string_view yaml, std::string_view source_name,
                                             const LoadOptions& options) {
  return load(std::string(yaml), source_name, options);
}

Result<gateway::Settings> load_config_file(const std::string& path, const LoadOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return Status(Errc::kInvalid, path + ": cannot read config file: it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return Status(Errc::kInvalid, path + ": cannot read config file: " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return Status(Errc::kInvalid, path + ": cannot read config file: " + std::strerror(errno));
  return load(text.str(), path, options);
}

std::string_view embedded_default_yaml() { return kEmbeddedYaml; }

Result<gateway::Settings> load_embedded_default(const LoadOptions& options) {
  return load_config_string(kEmbeddedYaml, kEmbeddedSource, options);
}

gateway::Settings embedded_default_settings() {
  Result<gateway::Settings> s = load_config_string(kEmbeddedYaml, kEmbeddedSource);
  if (!s) {  // a bug in this file, caught by the unit tests
    std::fprintf(stderr, "sluice: embedded default config is invalid: %s\n",
                 s.status().message().c_str());
    std::abort();
  }
  return std::move(s).value();
}

}  // namespace sluice::control
