#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "control/config_loader.h"

namespace sluice::control {
namespace {

using gateway::Millis;
using gateway::Settings;
using namespace std::chrono_literals;

const std::string kData = SLUICE_TEST_DATA;
const std::string kExamples = kData + "/../../examples";

// Sets an environment variable for one test and restores it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_.c_str(), old_->c_str(), 1);
    else
      unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The error message for `yaml`, or "OK" when it loads.
std::string error_of(const std::string& yaml) {
  Result<Settings> r = load_config_string(yaml, "t.yaml");
  if (r) return "OK";
  EXPECT_EQ(r.status().code(), Errc::kInvalid);
  return r.status().message();
}

// ---------------------------------------------------------------------------
// The embedded default

TEST(ConfigDefault, RunsTheMockOnTheStandardPorts) {
  Settings s = embedded_default_settings();
  EXPECT_EQ(s.source, "<embedded default>");
  EXPECT_EQ(s.server.listen, "0.0.0.0:8080");
  EXPECT_EQ(s.server.admin_listen, "127.0.0.1:9901");
  ASSERT_EQ(s.upstreams.size(), 1u);
  EXPECT_EQ(s.upstreams[0].name, "mock");
  ASSERT_EQ(s.upstreams[0].endpoints.size(), 1u);
  EXPECT_TRUE(s.upstreams[0].endpoints[0].builtin_mock);
  EXPECT_EQ(s.upstreams[0].endpoints[0].url, "builtin:mock");
  // The mock's own model is listed (GET /v1/models); any other name reaches it too.
  ASSERT_EQ(s.models.size(), 2u);
  EXPECT_EQ(s.models[0].name, "mock-1");
  EXPECT_EQ(s.models[1].name, "*");
  EXPECT_EQ(s.models[1].upstream, 0u);
  EXPECT_EQ(s.find_model("mock-1"), &s.models[0]);
  EXPECT_EQ(s.find_model("anything"), &s.models[1]);
}

TEST(ConfigDefault, EverythingNotWrittenKeepsTheStructDefaults) {
  Settings s = embedded_default_settings();
  gateway::Server d;
  EXPECT_EQ(s.server.workers, d.workers);
  EXPECT_EQ(s.server.max_header_bytes, d.max_header_bytes);
  EXPECT_EQ(s.server.max_headers, d.max_headers);
  EXPECT_EQ(s.server.max_body_bytes, d.max_body_bytes);
  EXPECT_EQ(s.server.header_timeout, d.header_timeout);
  EXPECT_EQ(s.server.idle_timeout, d.idle_timeout);
  EXPECT_EQ(s.server.drain_timeout, d.drain_timeout);
  EXPECT_EQ(s.server.access_log, "stdout");
  EXPECT_EQ(s.default_timeouts, gateway::Timeouts{});
  EXPECT_EQ(s.upstreams[0].timeouts, gateway::Timeouts{});
  EXPECT_EQ(s.models[0].timeouts, gateway::Timeouts{});
  EXPECT_EQ(s.upstreams[0].max_idle_per_endpoint, 64u);
  EXPECT_TRUE(s.upstreams[0].api_key.empty());
  EXPECT_TRUE(s.upstreams[0].tls.verify);
}

TEST(ConfigDefault, YamlIsExposedAndLoadsTheSame) {
  Result<Settings> r = load_config_string(embedded_default_yaml(), "x");
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->upstreams[0].name, "mock");
}

// ---------------------------------------------------------------------------
// Every field, read back

class ConfigFull : public ::testing::Test {
 protected:
  Settings load() {
    std::string yaml = read_file(kData + "/config/full.yaml");
    for (size_t p; (p = yaml.find("@DATA@")) != std::string::npos;) yaml.replace(p, 6, kData);
    Result<Settings> r = load_config_string(yaml, "full.yaml");
    EXPECT_TRUE(r) << r.status().message();
    return r ? std::move(r).value() : Settings{};
  }
  ScopedEnv key_{"SLUICE_TEST_KEY", "env-key"};
};

TEST_F(ConfigFull, Server) {
  Settings s = load();
  EXPECT_EQ(s.source, "full.yaml");
  EXPECT_EQ(s.server.listen, "[::1]:0");
  EXPECT_EQ(s.server.admin_listen, "127.0.0.1:0");
  EXPECT_EQ(s.server.workers, 4u);
  EXPECT_EQ(s.server.max_header_bytes, 32u * 1024);
  EXPECT_EQ(s.server.max_headers, 64u);
  EXPECT_EQ(s.server.max_body_bytes, 2'000'000u);
  EXPECT_EQ(s.server.header_timeout, 5s);
  EXPECT_EQ(s.server.idle_timeout, 2min);
  EXPECT_EQ(s.server.drain_timeout, 1h);
  EXPECT_EQ(s.server.access_log, kData + "/config/access.log");
}

TEST_F(ConfigFull, DefaultTimeouts) {
  Settings s = load();
  EXPECT_EQ(s.default_timeouts, (gateway::Timeouts{1500ms, 45s, 20s, 15min, 250ms}));
}

TEST_F(ConfigFull, Upstreams) {
  Settings s = load();
  ASSERT_EQ(s.upstreams.size(), 2u);
  const gateway::Upstream& a = s.upstreams[0];
  EXPECT_EQ(a.name, "pool-a");
  ASSERT_EQ(a.endpoints.size(), 4u);

  EXPECT_EQ(a.endpoints[0].url, "http://10.0.0.5:8000");
  EXPECT_FALSE(a.endpoints[0].builtin_mock);
  EXPECT_FALSE(a.endpoints[0].tls);
  EXPECT_EQ(a.endpoints[0].host, "10.0.0.5");
  EXPECT_EQ(a.endpoints[0].port, 8000);
  EXPECT_EQ(a.endpoints[0].path_prefix, "");

  EXPECT_EQ(a.endpoints[1].url, "https://[2001:db8::1]:8443/openai/");
  EXPECT_TRUE(a.endpoints[1].tls);
  EXPECT_EQ(a.endpoints[1].host, "2001:db8::1");
  EXPECT_EQ(a.endpoints[1].port, 8443);
  EXPECT_EQ(a.endpoints[1].path_prefix, "/openai");

  EXPECT_TRUE(a.endpoints[2].builtin_mock);
  EXPECT_EQ(a.endpoints[2].host, "");
  EXPECT_EQ(a.endpoints[2].port, 0);

  EXPECT_TRUE(a.endpoints[3].tls);  // scheme is case-insensitive
  EXPECT_EQ(a.endpoints[3].host, "api.example.com");
  EXPECT_EQ(a.endpoints[3].port, 443);

  EXPECT_EQ(a.api_key, "literal-key");
  std::vector<std::pair<std::string, std::string>> headers = {{"x-team", "platform"},
                                                              {"x-request-source", "sluice"}};
  EXPECT_EQ(a.headers, headers);
  EXPECT_FALSE(a.tls.verify);
  EXPECT_EQ(a.tls.ca_file, kData + "/config/ca.pem");
  EXPECT_EQ(a.tls.sni, "api.example.com");
  EXPECT_EQ(a.max_idle_per_endpoint, 0u);
  EXPECT_EQ(a.timeouts, (gateway::Timeouts{1500ms, 2min, 40s, 15min, 250ms}));

  const gateway::Upstream& b = s.upstreams[1];
  EXPECT_EQ(b.name, "pool_b.2");
  ASSERT_EQ(b.endpoints.size(), 1u);
  EXPECT_EQ(b.endpoints[0].host, "localhost");
  EXPECT_EQ(b.endpoints[0].port, 80);
  EXPECT_EQ(b.api_key, "env-key");
  EXPECT_TRUE(b.headers.empty());
  EXPECT_TRUE(b.tls.verify);
  EXPECT_EQ(b.tls.ca_file, "");
  EXPECT_EQ(b.tls.sni, "");
  EXPECT_EQ(b.max_idle_per_endpoint, 64u);
  EXPECT_EQ(b.timeouts, s.default_timeouts);
}

TEST_F(ConfigFull, ModelsResolveTimeoutsFieldByField) {
  Settings s = load();
  ASSERT_EQ(s.models.size(), 3u);
  const gateway::ModelRoute& llama = s.models[0];
  EXPECT_EQ(llama.name, "llama-3-8b");
  EXPECT_EQ(llama.aliases, (std::vector<std::string>{"llama3", "llama3:8b"}));
  EXPECT_EQ(llama.upstream, 0u);
  // connect: defaults; ttft, idle: upstream; total, client_stall: model.
  EXPECT_EQ(llama.timeouts, (gateway::Timeouts{1500ms, 2min, 40s, 30min, 1s}));

  EXPECT_EQ(s.models[1].name, "gpt-4o");
  EXPECT_EQ(s.models[1].upstream, 1u);
  EXPECT_TRUE(s.models[1].aliases.empty());
  EXPECT_EQ(s.models[1].timeouts, s.upstreams[1].timeouts);

  EXPECT_EQ(s.models[2].name, "*");
  EXPECT_EQ(s.models[2].upstream, 0u);
  EXPECT_EQ(s.models[2].timeouts, s.upstreams[0].timeouts);
}

// ---------------------------------------------------------------------------
// Files

TEST(ConfigFile, LoadsAndNamesTheSource) {
  std::string path = kData + "/config/minimal.yaml";
  Result<Settings> r = load_config_file(path);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->source, path);
  EXPECT_EQ(r->server.listen, "0.0.0.0:8080");
  EXPECT_EQ(r->upstreams[0].endpoints[0].port, 8000);
}

TEST(ConfigFile, ErrorsNameTheFileLineAndColumn) {
  std::string path = kData + "/config/bad_endpoint.yaml";
  Result<Settings> r = load_config_file(path);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kInvalid);
  EXPECT_EQ(
      r.status().message(),
      path + ":5:9: upstreams[0].endpoints[1]: unsupported scheme 'ftp' (expected http or https)");
}

TEST(ConfigFile, MissingFileOrDirectory) {
  Result<Settings> r = load_config_file(kData + "/config/nope.yaml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Errc::kInvalid);
  EXPECT_NE(r.status().message().find("nope.yaml: cannot read config file: No such file"),
            std::string::npos)
      << r.status().message();
  r = load_config_file(kData + "/config");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("it is a directory"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Accepted spellings

const std::string kUp = "upstreams:\n  - name: u\n    endpoints: [\"http://h\"]\n";
const std::string kModels = "models:\n  - name: m\n    upstream: u\n";

Settings load_ok(const std::string& yaml) {
  Result<Settings> r = load_config_string(yaml, "t.yaml");
  EXPECT_TRUE(r) << r.status().message();
  return r ? std::move(r).value() : Settings{};
}

TEST(ConfigValues, Durations) {
  struct Case {
    const char* text;
    Millis want;
  } cases[] = {{"5000", 5000ms}, {"\"250\"", 250ms}, {"250ms", 250ms}, {"10s", 10s},
               {"2m", 2min},     {"1h", 1h},         {"\"3 s\"", 3s},  {"8760h", 8760h}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Settings s = load_ok("timeouts: {ttft: " + std::string(c.text) + "}\n" + kUp + kModels);
    EXPECT_EQ(s.default_timeouts.ttft, c.want);
  }
}

TEST(ConfigValues, Sizes) {
  struct Case {
    const char* text;
    uint64_t want;
  } cases[] = {{"1", 1},
               {"100B", 100},
               {"2KB", 2000},
               {"2KiB", 2048},
               {"3MB", 3'000'000},
               {"3MiB", 3u << 20},
               {"1GB", 1'000'000'000},
               {"1GiB", 1ull << 30},
               {"\"16 MiB\"", 16u << 20}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    Settings s = load_ok("server: {max_body_bytes: " + std::string(c.text) + "}\n" + kUp + kModels);
    EXPECT_EQ(s.server.max_body_bytes, c.want);
  }
}

TEST(ConfigValues, EndpointUrls) {
  struct Case {
    const char* url;
    bool tls;
    const char* host;
    uint16_t port;
    const char* prefix;
  } cases[] = {
      {"http://h", false, "h", 80, ""},
      {"https://h", true, "h", 443, ""},
      {"http://h:1", false, "h", 1, ""},
      {"http://h:65535/", false, "h", 65535, ""},
      {"http://127.0.0.1:8000/v1//", false, "127.0.0.1", 8000, ""},  // an SDK base URL: /v1 is the API root
      {"http://127.0.0.1:8000/v1", false, "127.0.0.1", 8000, ""},
      {"https://gw.example/openai/v1", true, "gw.example", 443, "/openai"},
      {"http://h/v10", false, "h", 80, "/v10"},
      {"https://[::1]/a/b", true, "::1", 443, "/a/b"},
      {"http://my_service.internal:9000", false, "my_service.internal", 9000, ""},
      {"HtTp://Host.Example", false, "Host.Example", 80, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.url);
    Settings s = load_ok("upstreams:\n  - name: u\n    endpoints: [\"" + std::string(c.url) +
                         "\"]\n" + kModels);
    ASSERT_EQ(s.upstreams.size(), 1u);
    const gateway::Endpoint& e = s.upstreams[0].endpoints[0];
    EXPECT_EQ(e.url, c.url);
    EXPECT_FALSE(e.builtin_mock);
    EXPECT_EQ(e.tls, c.tls);
    EXPECT_EQ(e.host, c.host);
    EXPECT_EQ(e.port, c.port);
    EXPECT_EQ(e.path_prefix, c.prefix);
  }
}

TEST(ConfigValues, ListenAddresses) {
  for (const char* addr : {"0.0.0.0:0", "127.0.0.1:65535", "[::]:8080", "[::1]:0", "10.1.2.3:80"}) {
    SCOPED_TRACE(addr);
    Settings s = load_ok("server: {listen: \"" + std::string(addr) + "\"}\n" + kUp + kModels);
    EXPECT_EQ(s.server.listen, addr);
  }
  // The same port on different hosts, and two "pick one" ports, do not overlap.
  load_ok("server: {listen: \"127.0.0.1:9000\", admin_listen: \"127.0.0.2:9000\"}\n" + kUp +
          kModels);
  load_ok("server: {listen: \"0.0.0.0:0\", admin_listen: \"0.0.0.0:0\"}\n" + kUp + kModels);
}

TEST(ConfigValues, BooleansAndNulls) {
  Settings s = load_ok(
      "server:\ntimeouts:\n"
      "upstreams:\n  - name: u\n    endpoints: [\"https://h\"]\n    tls: {verify: no}\n    "
      "headers:\n"
      "models:\n  - name: m\n    upstream: u\n    aliases:\n    timeouts:\n");
  EXPECT_FALSE(s.upstreams[0].tls.verify);
  EXPECT_TRUE(s.upstreams[0].headers.empty());
  EXPECT_TRUE(s.models[0].aliases.empty());
}

TEST(ConfigValues, UpstreamProtocol) {
  Settings plain = load_ok(kUp + kModels);
  EXPECT_FALSE(plain.upstreams[0].http2);
  Settings h2 = load_ok(kUp + "    protocol: h2\n" + kModels);
  EXPECT_TRUE(h2.upstreams[0].http2);
  EXPECT_EQ(h2.upstreams[0].h2.ping_interval, 5s);
  EXPECT_EQ(h2.upstreams[0].h2.ping_timeout, 3s);
  EXPECT_EQ(h2.upstreams[0].h2.max_streams, 100u);
  EXPECT_EQ(h2.upstreams[0].h2.max_connections, 4u);
  Settings tuned = load_ok(kUp + "    protocol: h2\n    http2: {ping_interval: 750ms, ping_timeout: 2s, "
                                 "max_streams_per_connection: 32, max_connections_per_endpoint: 2}\n" + kModels);
  EXPECT_EQ(tuned.upstreams[0].h2.ping_interval, 750ms);
  EXPECT_EQ(tuned.upstreams[0].h2.ping_timeout, 2s);
  EXPECT_EQ(tuned.upstreams[0].h2.max_streams, 32u);
  EXPECT_EQ(tuned.upstreams[0].h2.max_connections, 2u);
  EXPECT_FALSE(load_ok(kUp + "    protocol: http1\n" + kModels).upstreams[0].http2);
}

TEST(ConfigValues, AccessLogFileInAnExistingDirectory) {
  Settings s = load_ok("server: {access_log: access.log}\n" + kUp + kModels);  // current directory
  EXPECT_EQ(s.server.access_log, "access.log");
  s = load_ok("server: {access_log: \"off\"}\n" + kUp + kModels);
  EXPECT_EQ(s.server.access_log, "off");
}

// ---------------------------------------------------------------------------
// Rejected configs: each message carries position, key path and the problem.

struct InvalidCase {
  const char* name;
  std::string yaml;
  std::string want;  // substring of the message
};

std::ostream& operator<<(std::ostream& os, const InvalidCase& c) { return os << c.name; }

class ConfigInvalid : public ::testing::TestWithParam<InvalidCase> {
 protected:
  ScopedEnv unset_{"SLUICE_TEST_UNSET", nullptr};
  ScopedEnv empty_{"SLUICE_TEST_EMPTY", ""};
  ScopedEnv key_{"SLUICE_TEST_KEY", "secret-from-env"};
};

TEST_P(ConfigInvalid, IsRejectedWithAPreciseMessage) {
  std::string got = error_of(GetParam().yaml);
  EXPECT_NE(got.find(GetParam().want), std::string::npos)
      << "got:  " << got << "\nwant: " << GetParam().want;
}

std::string server(const std::string& body) { return "server:\n" + body + kUp + kModels; }
std::string endpoint(const std::string& url) {
  return "upstreams:\n  - name: u\n    endpoints: [\"" + url + "\"]\n" + kModels;
}
// An upstream "u" with extra lines (4-space indented) after name and endpoints (lines 2-3).
std::string upstream(const std::string& extra) { return kUp + extra + kModels; }

const InvalidCase kInvalid[] = {
    // Document shape
    {"UnclosedFlow", "upstreams: [\n  {name: u\nmodels: x\n",
     "t.yaml:3:7: invalid YAML: end of map flow not found"},
    {"BadIndent", "server:\n  workers: 1\n bad: 2\n",
     "t.yaml:3:2: invalid YAML: end of map not found"},
    {"MapInScalar", "server: a: b\n", "t.yaml:1:10: invalid YAML: illegal map value"},
    {"Empty", "", "t.yaml:1:1: the config is empty"},
    {"OnlyComments", "# nothing\n", "t.yaml:1:1: the config is empty"},
    {"NotAMapping", "- a\n- b\n", "t.yaml:1:1: expected a mapping (key: value), got a list"},
    {"TwoDocuments", kUp + kModels + "---\nserver: {}\n", "t.yaml:8:1: expected one YAML document"},
    {"UnknownTopKey", "timout: {}\n" + kUp + kModels,
     "t.yaml:1:1: timout: unknown key 'timout' (expected one of: server, admission, auth, limits, pricing, timeouts, upstreams, "
     "models, default_upstream); "
     "did you mean 'timeouts'?"},
    {"UnknownServerKey", server("  listn: x\n"),
     "t.yaml:2:3: server.listn: unknown key 'listn' (expected one of: listen,"},
    {"DuplicateKey", server("  workers: 1\n  workers: 2\n"),
     "t.yaml:3:3: server.workers: duplicate key 'workers' (first set at line 2)"},
    {"DuplicateBlockKey", "timeouts:\n  ttft: 1s\ntimeouts:\n  ttft: 2s\n" + kUp + kModels,
     "t.yaml:3:1: timeouts: duplicate key 'timeouts' (first set at line 1)"},
    {"LongValueIsCut", server("  workers: " + std::string(200, '9') + "\n"),
     "got '" + std::string(80, '9') + "...'"},
    {"ServerIsAList", "server: [1]\n" + kUp + kModels,
     "t.yaml:1:9: server: expected a mapping (key: value), got a list"},
    {"NonScalarKey", "server:\n  ? [a]\n  : 1\n" + kUp + kModels,
     "t.yaml:2:5: server: expected a string key, got a list"},

    // Server
    {"WorkersTooMany", server("  workers: 300\n"),
     "t.yaml:2:12: server.workers: expected an integer from 0 to 256, got '300'"},
    {"WorkersNegative", server("  workers: -1\n"),
     "t.yaml:2:12: server.workers: expected an integer from 0 to 256, got '-1'"},
    {"WorkersText", server("  workers: many\n"),
     "t.yaml:2:12: server.workers: expected an integer from 0 to 256, got 'many'"},
    {"WorkersList", server("  workers: [1]\n"),
     "t.yaml:2:12: server.workers: expected an integer from 0 to 256, got a list"},
    {"MaxHeadersZero", server("  max_headers: 0\n"),
     "t.yaml:2:16: server.max_headers: expected an integer from 1 to 4294967295"},
    {"ListenNoPort", server("  listen: \"0.0.0.0\"\n"),
     "t.yaml:2:11: server.listen: missing port (expected IP:port"},
    {"ListenNoHost", server("  listen: \":8080\"\n"), "t.yaml:2:11: server.listen: missing host"},
    {"ListenHostname", server("  listen: \"myhost:8080\"\n"),
     "server.listen: host 'myhost' is not an IP address"},
    {"ListenPortRange", server("  listen: \"0.0.0.0:65536\"\n"),
     "t.yaml:2:11: server.listen: port must be 0-65535"},
    {"ListenPortText", server("  listen: \"0.0.0.0:http\"\n"),
     "server.listen: port must be 0-65535 (0 picks a free port), got 'http'"},
    {"ListenBareV6", server("  listen: \"::1:80\"\n"),
     "server.listen: IPv6 addresses must be written in brackets"},
    {"ListenBadV6", server("  listen: \"[::zz]:80\"\n"),
     "server.listen: invalid IPv6 address '::zz'"},
    {"ListenJunkAfterV6", server("  listen: \"[::1]8080\"\n"),
     "server.listen: unexpected '8080' after the host"},
    {"ListenEmpty", server("  listen: \"\"\n"),
     "t.yaml:2:11: server.listen: expected an address like 0.0.0.0:8080, got an empty string"},
    {"AdminOverlapsListen",
     server("  listen: \"0.0.0.0:9000\"\n  admin_listen: \"127.0.0.1:9000\"\n"),
     "t.yaml:3:17: server.admin_listen: admin_listen '127.0.0.1:9000' overlaps listen "
     "'0.0.0.0:9000'"},
    {"ListenOverlapsDefaultAdmin", server("  listen: \"127.0.0.1:9901\"\n"),
     "t.yaml:2:11: server.listen: admin_listen"},
    {"AccessLogNoDir", server("  access_log: /nonexistent-dir/x.log\n"),
     "t.yaml:2:15: server.access_log: directory '/nonexistent-dir' of the access log does not "
     "exist"},
    {"AccessLogIsDir", server("  access_log: /tmp/\n"),
     "server.access_log: '/tmp/' is a directory"},

    // Durations and sizes
    {"DurationZero", server("  header_timeout: 0\n"),
     "t.yaml:2:19: server.header_timeout: must be greater than zero"},
    {"DurationNegative", server("  idle_timeout: -5s\n"),
     "t.yaml:2:17: server.idle_timeout: must not be negative, got '-5s'"},
    {"DurationUnit", server("  drain_timeout: 10sec\n"),
     "t.yaml:2:18: server.drain_timeout: unknown duration unit 'sec' (expected ms, s, m or h)"},
    {"DurationFraction", "timeouts: {ttft: 1.5s}\n" + kUp + kModels,
     "t.yaml:1:18: timeouts.ttft: expected a whole number, got '1.5s' (use a smaller unit, e.g. "
     "1500ms)"},
    {"DurationOverflow", "timeouts: {ttft: 99999999999999999999ms}\n" + kUp + kModels,
     "timeouts.ttft: is too large (does not fit in 64 bits)"},
    {"DurationTooLong", "timeouts: {total: 8761h}\n" + kUp + kModels,
     "timeouts.total: is too long (at most 8760h, one year)"},
    {"DurationMultiplyOverflow", "timeouts: {total: 9999999999999999h}\n" + kUp + kModels,
     "timeouts.total: is too long"},
    {"DurationText", "timeouts: {idle: soon}\n" + kUp + kModels,
     "t.yaml:1:18: timeouts.idle: expected a duration: integer milliseconds or a string like "
     "250ms, 10s, 2m, 1h, got 'soon'"},
    {"DurationEmpty", "timeouts: {idle: }\n" + kUp + kModels,
     "timeouts.idle: expected a duration: integer milliseconds"},
    {"UnknownTimeout", "timeouts: {ttf: 1s}\n" + kUp + kModels,
     "t.yaml:1:12: timeouts.ttf: unknown key 'ttf' (expected one of: connect, ttft, idle, total, "
     "client_stall); "
     "did you mean 'ttft'?"},
    {"SizeZero", server("  max_body_bytes: 0\n"),
     "t.yaml:2:19: server.max_body_bytes: must be greater than zero"},
    {"SizeUnit", server("  max_body_bytes: 16mb\n"),
     "server.max_body_bytes: unknown size unit 'mb' (expected B, KB, MB, GB, KiB, MiB or GiB)"},
    {"SizeOverflow", server("  max_header_bytes: 20000000000GiB\n"),
     "server.max_header_bytes: is too large (does not fit in 64 bits)"},
    {"SizeFraction", server("  max_body_bytes: 1.5MiB\n"),
     "server.max_body_bytes: expected a whole number, got '1.5MiB' (use a smaller unit, e.g. "
     "1536KiB)"},
    {"SizeNegative", server("  max_header_bytes: -1\n"),
     "server.max_header_bytes: must not be negative"},

    // Upstreams
    {"UpstreamsNotAList", "upstreams: {name: u}\n" + kModels,
     "t.yaml:1:12: upstreams: expected a list, got a mapping"},
    {"UpstreamNoName", "upstreams:\n  - endpoints: [\"http://h\"]\n" + kModels,
     "t.yaml:2:5: upstreams[0].name: missing required key 'name'"},
    {"UpstreamNullName", "upstreams:\n  - name:\n    endpoints: [\"http://h\"]\n" + kModels,
     "t.yaml:2:5: upstreams[0].name: missing required key 'name' (it has no value)"},
    {"UpstreamBadName", "upstreams:\n  - name: my pool\n    endpoints: [\"http://h\"]\n" + kModels,
     "t.yaml:2:11: upstreams[0].name: upstream names may contain only letters, digits, '-', '_' "
     "and '.', got 'my pool'"},
    {"UpstreamDuplicate", kUp + "  - name: u\n    endpoints: [\"http://g\"]\n" + kModels,
     "t.yaml:4:11: upstreams[1].name: duplicate upstream name 'u' (first defined at line 2)"},
    {"UpstreamUnknownKey", upstream("    timeout: {ttft: 1s}\n"),
     "t.yaml:4:5: upstreams[0].timeout: unknown key 'timeout' (expected one of: name, endpoints, "
     "api_key, "
     "api_key_env, headers, tls, max_idle_per_endpoint, protocol, http2, timeouts, concurrency); did you mean "
     "'timeouts'?"},
    {"NoEndpointsKey", "upstreams:\n  - name: u\n" + kModels,
     "t.yaml:2:5: upstreams[0].endpoints: missing required key 'endpoints'"},
    {"EmptyEndpoints", "upstreams:\n  - name: u\n    endpoints: []\n" + kModels,
     "t.yaml:3:16: upstreams[0].endpoints: no endpoints: add at least one URL"},
    {"EndpointsNotAList", "upstreams:\n  - name: u\n    endpoints: \"http://h\"\n" + kModels,
     "t.yaml:3:16: upstreams[0].endpoints: expected a list, got 'http://h'"},
    {"EndpointScheme", endpoint("ftp://h"),
     "t.yaml:3:17: upstreams[0].endpoints[0]: unsupported scheme 'ftp' (expected http or https)"},
    {"EndpointNoScheme", endpoint("10.0.0.5:8000"),
     "t.yaml:3:17: upstreams[0].endpoints[0]: expected a URL like http://host:port, "
     "https://host/prefix or builtin:mock, got '10.0.0.5:8000'"},
    {"EndpointUserinfo", endpoint("http://user:pw@h"),
     "upstreams[0].endpoints[0]: credentials in the URL are not allowed"},
    {"EndpointQuery", endpoint("http://h/v1?x=1"),
     "upstreams[0].endpoints[0]: query strings and fragments are not allowed"},
    {"EndpointFragment", endpoint("http://h/#top"),
     "upstreams[0].endpoints[0]: query strings and fragments are not allowed"},
    {"EndpointSpace", endpoint("http://h/a b"),
     "upstreams[0].endpoints[0]: spaces and control characters are not allowed"},
    {"EndpointPathChar", endpoint("http://h/a<b>"),
     "upstreams[0].endpoints[0]: invalid character '<' in the URL path"},
    {"EndpointPortZero", endpoint("http://h:0"),
     "upstreams[0].endpoints[0]: port must be 1-65535, got '0'"},
    {"EndpointPortRange", endpoint("http://h:65536"),
     "upstreams[0].endpoints[0]: port must be 1-65535, got '65536'"},
    {"EndpointPortEmpty", endpoint("http://h:/v1"),
     "upstreams[0].endpoints[0]: port must be 1-65535, got ''"},
    {"EndpointNoHost", endpoint("http://"), "upstreams[0].endpoints[0]: missing host"},
    {"EndpointNoHostPort", endpoint("http://:80"), "upstreams[0].endpoints[0]: missing host"},
    {"EndpointBadHost", endpoint("http://bad!host"),
     "upstreams[0].endpoints[0]: invalid host 'bad!host'"},
    {"EndpointBadIpv4", endpoint("http://999.1.1.1"),
     "upstreams[0].endpoints[0]: invalid host '999.1.1.1'"},
    {"EndpointBareV6", endpoint("http://::1:80"),
     "upstreams[0].endpoints[0]: IPv6 addresses must be written in brackets"},
    {"EndpointBuiltin", endpoint("builtin:echo"),
     "upstreams[0].endpoints[0]: unknown builtin endpoint 'builtin:echo' (expected builtin:mock)"},
    {"EndpointDuplicate",
     "upstreams:\n  - name: u\n    endpoints: [\"http://h\", \"http://h\"]\n" + kModels,
     "t.yaml:3:29: upstreams[0].endpoints[1]: duplicate endpoint 'http://h'"},
    {"SecondEndpointBad",
     "upstreams:\n  - name: u\n    endpoints:\n      - \"http://a\"\n      - \"http://b:x\"\n" +
         kModels,
     "t.yaml:5:9: upstreams[0].endpoints[1]: port must be 1-65535, got 'x'"},
    {"BothKeys", upstream("    api_key: k\n    api_key_env: SLUICE_TEST_KEY\n"),
     "t.yaml:5:18: upstreams[0].api_key_env: set either api_key or api_key_env, not both"},
    {"KeyEnvUnset", upstream("    api_key_env: SLUICE_TEST_UNSET\n"),
     "t.yaml:4:18: upstreams[0].api_key_env: environment variable SLUICE_TEST_UNSET is not set"},
    {"KeyEnvEmpty", upstream("    api_key_env: SLUICE_TEST_EMPTY\n"),
     "t.yaml:4:18: upstreams[0].api_key_env: environment variable SLUICE_TEST_EMPTY is empty"},
    {"KeyEnvBadName", upstream("    api_key_env: \"1-KEY\"\n"),
     "upstreams[0].api_key_env: '1-KEY' is not an environment variable name"},
    {"KeyEmpty", upstream("    api_key: \"\"\n"),
     "t.yaml:4:14: upstreams[0].api_key: the API key is empty"},
    {"KeyNewline", upstream("    api_key: \"abc\\ndef\"\n"),
     "upstreams[0].api_key: the API key contains control characters"},
    {"KeyList", upstream("    api_key: [a]\n"),
     "upstreams[0].api_key: expected a string, got a list"},
    {"HeaderName", upstream("    headers: {\"bad header\": x}\n"),
     "t.yaml:4:15: upstreams[0].headers.bad header: 'bad header' is not a valid header name "
     "(expected an HTTP token)"},
    {"HeaderValueCrLf", upstream("    headers: {x-a: \"v\\r\\nx-b: 1\"}\n"),
     "t.yaml:4:20: upstreams[0].headers.x-a: header values must not contain CR, LF or NUL"},
    {"HeaderValueNul", upstream("    headers: {x-a: \"v\\0\"}\n"),
     "upstreams[0].headers.x-a: header values must not contain CR, LF or NUL"},
    {"HeaderValueMap", upstream("    headers: {x-a: {b: c}}\n"),
     "upstreams[0].headers.x-a: expected a header value, got a mapping"},
    {"HeaderReserved", upstream("    headers: {Content-Length: 5}\n"),
     "upstreams[0].headers.Content-Length: header 'Content-Length' is managed by sluice and cannot "
     "be set"},
    {"HeaderTwice", upstream("    headers: {X-A: 1, x-a: 2}\n"),
     "t.yaml:4:23: upstreams[0].headers.x-a: header 'x-a' is set twice (names are "
     "case-insensitive)"},
    {"HeaderAuthAndKey", upstream("    api_key: k\n    headers: {Authorization: \"Bearer x\"}\n"),
     "upstreams[0].headers.Authorization: authorization conflicts with api_key/api_key_env"},
    {"HeadersList", upstream("    headers: [a]\n"),
     "t.yaml:4:14: upstreams[0].headers: expected a mapping (key: value), got a list"},
    {"TlsVerify", upstream("    tls: {verify: maybe}\n"),
     "t.yaml:4:19: upstreams[0].tls.verify: expected true or false, got 'maybe'"},
    {"TlsCaMissing", upstream("    tls: {ca_file: /nonexistent/ca.pem}\n"),
     "t.yaml:4:20: upstreams[0].tls.ca_file: cannot read CA file '/nonexistent/ca.pem': No such "
     "file or directory"},
    {"TlsCaDirectory", upstream("    tls: {ca_file: /tmp}\n"),
     "upstreams[0].tls.ca_file: cannot read CA file '/tmp': it is a directory"},
    {"TlsSni", upstream("    tls: {sni: \"a b\"}\n"),
     "upstreams[0].tls.sni: 'a b' is not a DNS name"},
    {"TlsUnknown", upstream("    tls: {insecure: true}\n"),
     "upstreams[0].tls.insecure: unknown key 'insecure' (expected one of: verify, ca_file, sni)"},
    {"MaxIdleNegative", upstream("    max_idle_per_endpoint: -1\n"),
     "t.yaml:4:28: upstreams[0].max_idle_per_endpoint: expected an integer from 0 to 4294967295, "
     "got '-1'"},
    {"MaxIdleOverflow", upstream("    max_idle_per_endpoint: 4294967296\n"),
     "upstreams[0].max_idle_per_endpoint: expected an integer"},
    {"UpstreamProtocol", upstream("    protocol: http3\n"),
     "t.yaml:4:15: upstreams[0].protocol: protocol must be \"http1\" or \"h2\", got 'http3'"},
    {"Http2WithoutH2", upstream("    http2: {ping_timeout: 1s}\n"),
     "t.yaml:4:12: upstreams[0].http2: http2 settings need protocol: h2"},
    {"Http2PingZero", upstream("    protocol: h2\n    http2: {ping_interval: 0}\n"),
     "upstreams[0].http2.ping_interval: must be greater than zero"},
    {"Http2Streams", upstream("    protocol: h2\n    http2: {max_streams_per_connection: 0}\n"),
     "upstreams[0].http2.max_streams_per_connection: expected an integer from 1 to 10000, got '0'"},
    {"Http2Unknown", upstream("    protocol: h2\n    http2: {keepalive: 1s}\n"),
     "upstreams[0].http2.keepalive: unknown key 'keepalive' (expected one of: ping_interval, ping_timeout, "
     "max_streams_per_connection, max_connections_per_endpoint)"},
    {"UpstreamTimeout", upstream("    timeouts: {connect: 0}\n"),
     "t.yaml:4:25: upstreams[0].timeouts.connect: must be greater than zero"},

    // Models
    {"NoModelsKey", kUp, "t.yaml:1:1: models: no models: add at least one route"},
    {"EmptyModels", kUp + "models: []\n", "t.yaml:4:9: models: no models: add at least one route"},
    {"ModelUnknownUpstream", kUp + "models:\n  - name: m\n    upstream: uu\n",
     "t.yaml:6:15: models[0].upstream: unknown upstream 'uu' (defined: u)"},
    {"ModelUpstreamTypo",
     "upstreams:\n  - {name: vllm, endpoints: [\"http://h\"]}\n  - {name: openai, endpoints: "
     "[\"http://o\"]}\n"
     "models:\n  - {name: m, upstream: vlm}\n",
     "t.yaml:5:25: models[0].upstream: unknown upstream 'vlm' (defined: vllm, openai); did you "
     "mean 'vllm'?"},
    {"ModelNoUpstreams", "models:\n  - name: m\n    upstream: u\n",
     "t.yaml:3:15: models[0].upstream: unknown upstream 'u' (no upstreams are defined)"},
    {"ModelMissingUpstream", kUp + "models:\n  - name: m\n",
     "t.yaml:5:5: models[0].upstream: missing required key 'upstream'"},
    {"ModelMissingName", kUp + "models:\n  - upstream: u\n",
     "t.yaml:5:5: models[0].name: missing required key 'name'"},
    {"ModelDuplicateName", kUp + kModels + "  - name: m\n    upstream: u\n",
     "t.yaml:7:11: models[1].name: duplicate model name 'm' (already used by models[0].name at "
     "line 5)"},
    {"AliasShadowsName",
     kUp + "models:\n  - name: a\n    upstream: u\n  - name: b\n    aliases: [x, a]\n    upstream: "
           "u\n",
     "t.yaml:8:18: models[1].aliases[1]: duplicate model name 'a' (already used by models[0].name "
     "at line 5)"},
    {"NameShadowsAlias",
     kUp +
         "models:\n  - name: a\n    aliases: [b]\n    upstream: u\n  - name: b\n    upstream: u\n",
     "t.yaml:8:11: models[1].name: duplicate model name 'b' (already used by models[0].aliases[0] "
     "at line 6)"},
    {"AliasTwice", kUp + "models:\n  - name: a\n    aliases: [b, b]\n    upstream: u\n",
     "models[0].aliases[1]: duplicate model name 'b'"},
    {"AliasIsOwnName", kUp + "models:\n  - name: a\n    aliases: [a]\n    upstream: u\n",
     "models[0].aliases[0]: duplicate model name 'a'"},
    {"TwoCatchAlls",
     kUp + "models:\n  - name: \"*\"\n    upstream: u\n  - name: \"*\"\n    upstream: u\n",
     "t.yaml:7:11: models[1].name: duplicate model name '*'"},
    {"CatchAllAliases", kUp + "models:\n  - name: \"*\"\n    aliases: [x]\n    upstream: u\n",
     "t.yaml:6:14: models[0].aliases: the catch-all route '*' cannot have aliases"},
    {"AliasStar", kUp + "models:\n  - name: a\n    aliases: [\"*\"]\n    upstream: u\n",
     "models[0].aliases[0]: '*' cannot be an alias"},
    {"ModelPattern", kUp + "models:\n  - name: llama*\n    upstream: u\n",
     "t.yaml:5:11: models[0].name: patterns are not supported"},
    {"ModelSpace", kUp + "models:\n  - name: \"my model\"\n    upstream: u\n",
     "models[0].name: model names must not contain spaces"},
    {"ModelEmptyName", kUp + "models:\n  - name: \"\"\n    upstream: u\n",
     "t.yaml:5:11: models[0].name: expected a model name, got an empty string"},
    {"AliasesNotAList", kUp + "models:\n  - name: a\n    aliases: b\n    upstream: u\n",
     "t.yaml:6:14: models[0].aliases: expected a list, got 'b'"},
    {"ModelTimeoutUnknown",
     kUp + "models:\n  - name: a\n    upstream: u\n    timeouts: {totl: 1s}\n",
     "t.yaml:7:16: models[0].timeouts.totl: unknown key 'totl'"},
    {"ModelItemNotAMap", kUp + "models:\n  - m\n",
     "t.yaml:5:5: models[0]: expected a mapping (key: value), got 'm'"},
};

INSTANTIATE_TEST_SUITE_P(Table, ConfigInvalid, ::testing::ValuesIn(kInvalid),
                         [](const ::testing::TestParamInfo<InvalidCase>& info) {
                           return info.param.name;
                         });

TEST(ConfigInvalidNames, TableNamesAreUnique) {
  std::set<std::string> names;
  for (const InvalidCase& c : kInvalid) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

TEST(ConfigSecrets, ErrorsNeverEchoTheKey) {
  ScopedEnv key{"SLUICE_TEST_KEY", "sk-secret\r\n"};
  std::string got = error_of(upstream("    api_key_env: SLUICE_TEST_KEY\n"));
  EXPECT_NE(got.find("contains control characters"), std::string::npos) << got;
  EXPECT_EQ(got.find("sk-secret"), std::string::npos) << got;
  got = error_of(upstream("    api_key: \"sk-secret\\n\"\n"));
  EXPECT_EQ(got.find("sk-secret"), std::string::npos) << got;
}

// ---------------------------------------------------------------------------
// find_model

TEST(FindModel, ExactAliasWildcardAndMiss) {
  Settings s = load_ok(kUp +
                       "models:\n"
                       "  - {name: llama-3-8b, aliases: [llama3, l3], upstream: u}\n"
                       "  - {name: gpt-4o, upstream: u}\n"
                       "  - {name: \"*\", upstream: u}\n");
  ASSERT_EQ(s.models.size(), 3u);
  EXPECT_EQ(s.find_model("llama-3-8b"), &s.models[0]);
  EXPECT_EQ(s.find_model("llama3"), &s.models[0]);
  EXPECT_EQ(s.find_model("l3"), &s.models[0]);
  EXPECT_EQ(s.find_model("gpt-4o"), &s.models[1]);
  EXPECT_EQ(s.find_model("gpt-4"), &s.models[2]);   // no prefix matching
  EXPECT_EQ(s.find_model("LLAMA3"), &s.models[2]);  // case-sensitive
  EXPECT_EQ(s.find_model(""), &s.models[2]);
  EXPECT_EQ(s.find_model("*"), &s.models[2]);
}

TEST(FindModel, MissWithoutCatchAll) {
  Settings s = load_ok(kUp + "models:\n  - {name: a, aliases: [b], upstream: u}\n");
  EXPECT_EQ(s.find_model("a"), &s.models[0]);
  EXPECT_EQ(s.find_model("b"), &s.models[0]);
  EXPECT_EQ(s.find_model("c"), nullptr);
}

TEST(FindModel, SurvivesCopyAndMove) {
  Settings original =
      load_ok(kUp + "models:\n  - {name: a, upstream: u}\n  - {name: \"*\", upstream: u}\n");
  Settings copy = original;
  EXPECT_EQ(copy.find_model("a"), &copy.models[0]);
  EXPECT_EQ(copy.find_model("zzz"), &copy.models[1]);
  Settings moved = std::move(original);
  EXPECT_EQ(moved.find_model("a"), &moved.models[0]);
}

TEST(FindModel, HandBuiltSettingsWorkWithOrWithoutIndex) {
  Settings s;
  EXPECT_EQ(s.find_model("x"), nullptr);
  s.models.push_back({.name = "a", .aliases = {"b"}});
  s.models.push_back({.name = "*"});
  EXPECT_EQ(s.find_model("b"), &s.models[0]);  // not indexed yet: linear scan
  EXPECT_EQ(s.find_model("q"), &s.models[1]);
  s.index_models();
  EXPECT_EQ(s.find_model("a"), &s.models[0]);
  EXPECT_EQ(s.find_model("q"), &s.models[1]);
  s.models.pop_back();  // stale index: falls back to scanning
  EXPECT_EQ(s.find_model("q"), nullptr);
  EXPECT_EQ(s.find_model("b"), &s.models[0]);
}

// ---------------------------------------------------------------------------
// Examples shipped in examples/ must load.

TEST(ConfigExamples, EveryExampleLoads) {
  ScopedEnv vllm{"VLLM_API_KEY", "test-vllm-key"};
  ScopedEnv openai{"OPENAI_API_KEY", "test-openai-key"};
  ScopedEnv groq{"GROQ_API_KEY", "test-groq-key"};
  std::set<std::string> seen;
  for (const auto& entry : std::filesystem::directory_iterator(kExamples)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    Result<Settings> r = load_config_file(entry.path().string());
    ASSERT_TRUE(r) << r.status().message();
    EXPECT_FALSE(r->models.empty());
    seen.insert(entry.path().filename().string());
  }
  for (const char* name : {"vllm-fleet.yaml", "openai-tls.yaml", "mixed.yaml"})
    EXPECT_TRUE(seen.count(name)) << name << " is missing";
}

TEST(ConfigExamples, VllmFleetRoutesAliasesWithPerModelTimeouts) {
  ScopedEnv vllm{"VLLM_API_KEY", "test-vllm-key"};
  Result<Settings> r = load_config_file(kExamples + "/vllm-fleet.yaml");
  ASSERT_TRUE(r) << r.status().message();
  const gateway::ModelRoute* m = r->find_model("llama3-70b");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(r->upstreams[m->upstream].name, "vllm-large");
  EXPECT_EQ(r->upstreams[m->upstream].api_key, "test-vllm-key");
  EXPECT_EQ(m->timeouts.ttft, 3min);
  EXPECT_EQ(m->timeouts.total, 30min);
  EXPECT_EQ(m->timeouts.connect, 2s);
  EXPECT_EQ(r->find_model("unknown"), nullptr);
}

TEST(ConfigExamples, OpenAiNeedsItsKey) {
  ScopedEnv openai{"OPENAI_API_KEY", nullptr};
  Result<Settings> r = load_config_file(kExamples + "/openai-tls.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.status().message().find("environment variable OPENAI_API_KEY is not set"),
            std::string::npos);
}

TEST(ConfigExamples, MixedFallsBackToTheMock) {
  ScopedEnv groq{"GROQ_API_KEY", "k"};
  Result<Settings> r = load_config_file(kExamples + "/mixed.yaml");
  ASSERT_TRUE(r) << r.status().message();
  const gateway::ModelRoute* m = r->find_model("no-such-model");
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(r->upstreams[m->upstream].endpoints[0].builtin_mock);
  const gateway::ModelRoute* groq_route = r->find_model("groq-70b");
  ASSERT_NE(groq_route, nullptr);
  EXPECT_EQ(r->upstreams[groq_route->upstream].endpoints[0].path_prefix, "/openai");
}

}  // namespace
}  // namespace sluice::control

// ---------------------------------------------------------------------------
// Issue 9 regressions: upstream model names, default route, overrides, check mode.

namespace sluice::control {
namespace {

TEST(ConfigRoutes, UpstreamModelDefaultsToTheRouteName) {
  Settings s = load_ok(kUp +
                       "models:\n"
                       "  - {name: meta-llama/Meta-Llama-3.1-8B-Instruct, aliases: [llama3], upstream: u}\n"
                       "  - {name: gpt-4o-mini, upstream: u, upstream_model: gpt-4o-mini-2024-07-18}\n"
                       "  - {name: \"*\", upstream: u}\n");
  EXPECT_EQ(s.models[0].upstream_model, "meta-llama/Meta-Llama-3.1-8B-Instruct");
  EXPECT_EQ(s.models[1].upstream_model, "gpt-4o-mini-2024-07-18");
  EXPECT_EQ(s.models[2].upstream_model, "");  // the catch-all passes the client's name
  EXPECT_EQ(s.route_without_model(), &s.models[2]);
  EXPECT_NE(error_of(kUp + "models:\n  - {name: a, upstream: u, upstream_model: \"*\"}\n").find(
                "t.yaml:5:44: models[0].upstream_model: upstream_model must be a model name, not '*'"),
            std::string::npos);
  EXPECT_NE(error_of(kUp + "models:\n  - {name: a, upstream: u, upstream_model: \"x y\"}\n").find(
                "models[0].upstream_model: model names must not contain spaces"),
            std::string::npos);
}

TEST(ConfigRoutes, DefaultUpstreamTakesRequestsWithoutAModel) {
  Settings s = load_ok(kUp + "default_upstream: u\nmodels:\n  - {name: a, upstream: u}\n");
  ASSERT_TRUE(s.default_route.has_value());
  EXPECT_EQ(s.default_route->upstream, 0u);
  EXPECT_EQ(s.route_without_model(), &*s.default_route);
  EXPECT_EQ(s.find_model("b"), nullptr);  // it is not a catch-all for unknown models

  Settings none = load_ok(kUp + "models:\n  - {name: a, upstream: u}\n");
  EXPECT_EQ(none.route_without_model(), nullptr);

  EXPECT_NE(error_of(kUp + "default_upstream: v\nmodels:\n  - {name: a, upstream: u}\n")
                .find("t.yaml:4:19: default_upstream: unknown upstream 'v' (defined: u)"),
            std::string::npos);
}

std::string override_error(LoadOptions o, const std::string& yaml = kUp + kModels) {
  Result<Settings> r = load_config_string(yaml, "t.yaml", o);
  return r ? "OK" : r.status().message();
}

TEST(ConfigOverrides, SameRulesAsTheConfig) {
  EXPECT_EQ(override_error({.listen = "127.0.0.1:99999"}), "--listen: port must be 0-65535 (0 picks a free port), got '99999'");
  EXPECT_NE(override_error({.listen = "myhost:80"}).find("--listen: host 'myhost' is not an IP address"),
            std::string::npos);
  EXPECT_NE(override_error({.admin_listen = "[zz]:1"}).find("--admin: invalid IPv6 address 'zz'"), std::string::npos);
  EXPECT_EQ(override_error({.workers = "-3"}),
            "--workers: expected an integer from 0 to 256 (0 = one per core), got '-3'");
  EXPECT_EQ(override_error({.workers = "257"}).substr(0, 10), "--workers:");
  EXPECT_NE(override_error({.access_log = "/nonexistent-dir/x.log"}).find("--access-log: directory"),
            std::string::npos);
  // Overrides and the config are checked against each other.
  EXPECT_NE(override_error({.admin_listen = "0.0.0.0:8080"}).find("--admin: admin_listen '0.0.0.0:8080' overlaps"),
            std::string::npos);

  // localhost means 127.0.0.1 in both places.
  Result<Settings> ok = load_config_string(kUp + kModels, "t.yaml",
                                           {.listen = "localhost:18080", .admin_listen = "127.0.0.1:0", .workers = "3"});
  ASSERT_TRUE(ok.has_value()) << ok.status().message();
  EXPECT_EQ(ok->server.listen, "localhost:18080");
  EXPECT_EQ(ok->server.workers, 3u);
  EXPECT_EQ(error_of("server: {listen: \"localhost:18080\"}\n" + kUp + kModels), "OK");
  EXPECT_EQ(error_of("server: {workers: 257}\n" + kUp + kModels).find("expected an integer from 0 to 256") !=
                std::string::npos,
            true);
}

TEST(ConfigCheckOnly, UnsetKeyVariableIsAWarning) {
  unsetenv("SLUICE_TEST_UNSET_KEY");
  const std::string yaml =
      "upstreams:\n  - name: u\n    endpoints: [\"http://h\"]\n    api_key_env: SLUICE_TEST_UNSET_KEY\n" + kModels;
  EXPECT_NE(error_of(yaml).find("environment variable SLUICE_TEST_UNSET_KEY is not set"), std::string::npos);
  Result<Settings> checked = load_config_string(yaml, "t.yaml", {.check_only = true});
  ASSERT_TRUE(checked.has_value()) << checked.status().message();
  ASSERT_EQ(checked->warnings.size(), 1u);
  EXPECT_NE(checked->warnings[0].find("t.yaml:4:18: upstreams[0].api_key_env: environment variable "
                                      "SLUICE_TEST_UNSET_KEY is not set"),
            std::string::npos)
      << checked->warnings[0];
  // Anything else is still an error in check mode.
  EXPECT_FALSE(load_config_string(yaml + "bogus: 1\n", "t.yaml", {.check_only = true}).has_value());
}

}  // namespace
}  // namespace sluice::control

// ---------------------------------------------------------------------------
// Issue 10: admission, body limits, connection cap, route allow-lists and limits.

namespace sluice::control {
namespace {

TEST(ConfigAdmission, DefaultsAreSafe) {
  Settings s = load_ok(kUp + kModels);
  EXPECT_EQ(s.server.max_header_value_bytes, 8u * 1024);
  EXPECT_EQ(s.server.body_timeout, std::chrono::seconds(30));
  EXPECT_EQ(s.server.min_body_rate, 1024u);
  EXPECT_EQ(s.server.min_body_rate_grace, std::chrono::seconds(5));
  EXPECT_EQ(s.server.max_connections, 10000u);
  EXPECT_EQ(s.admission.audit_log, "stderr");
  EXPECT_EQ(s.admission.memory.limit, 0u);  // the cgroup's, when there is one
  EXPECT_DOUBLE_EQ(s.admission.memory.high, 0.75);
  EXPECT_DOUBLE_EQ(s.admission.memory.low, 0.30);
  EXPECT_FALSE(s.admission.concurrency.enabled());
  // The value cap is always a rule.
  auto labels = s.admission.header_rules.labels();
  ASSERT_EQ(labels.size(), 1u);
  EXPECT_EQ(labels[0], "max_header_value_bytes");
}

TEST(ConfigAdmission, TheIssuesShapeLoads) {
  Settings s = load_ok(
      "server:\n"
      "  max_header_bytes: 16KiB\n"
      "  max_headers: 100\n"
      "  max_header_value_bytes: 8KiB\n"
      "  body_timeout: 30s\n"
      "  min_body_rate: {bytes_per_second: 1024, grace: 5s}\n"
      "  max_connections: 10000\n"
      "admission:\n"
      "  header_rules:\n"
      "    - {header: x-request-id, pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', "
      "required: false}\n"
      "    - {header: authorization, pattern: '^Bearer [A-Za-z0-9._~+/-]+=*$'}\n"
      "  audit_log: stderr\n"
      "  memory: {limit: 1GiB, high: 0.75, low: 0.30, sample: 100ms}\n"
      "  concurrency: {max: 4096, queue: 1024, queue_timeout: 2s}\n"
      "upstreams:\n  - name: fleet\n    endpoints: [\"http://h\"]\n    concurrency: {max: 128, queue: 64}\n"
      "models:\n"
      "  - name: big-model\n"
      "    upstream: fleet\n"
      "    allow_headers: {mode: drop, names: [content-type, X-Request-ID]}\n"
      "    concurrency: {max: 64, queue: 256, queue_timeout: 5s, status: 429}\n");
  EXPECT_EQ(s.server.max_header_bytes, 16u * 1024);
  EXPECT_EQ(s.admission.header_rules.size(), 2u);
  EXPECT_EQ(s.admission.memory.limit, uint64_t{1} << 30);
  EXPECT_EQ(s.admission.memory.sample, std::chrono::milliseconds(100));
  EXPECT_EQ(s.admission.concurrency.max, 4096u);
  EXPECT_EQ(s.admission.concurrency.queue, 1024u);
  EXPECT_EQ(s.admission.concurrency.queue_timeout, std::chrono::seconds(2));
  EXPECT_EQ(s.upstreams[0].concurrency.max, 128u);
  const auto& m = s.models[0];
  ASSERT_TRUE(m.allow_headers.has_value());
  EXPECT_EQ(m.allow_headers->mode, policy::AllowHeaders::Mode::kDrop);
  EXPECT_EQ(m.allow_headers->names, (std::vector<std::string>{"content-type", "x-request-id"}));
  EXPECT_EQ(m.concurrency.status, 429);
  EXPECT_EQ(m.concurrency.queue_timeout, std::chrono::seconds(5));
}

TEST(ConfigAdmission, ErrorsNameTheirPlace) {
  auto err = [](const std::string& admission) { return error_of("admission:\n" + admission + kUp + kModels); };
  EXPECT_NE(err("  header_rules:\n    - {header: x-a, pattern: '(unclosed'}\n")
                .find("t.yaml:3:30: admission.header_rules[0].pattern: invalid pattern: missing ): (unclosed"),
            std::string::npos)
      << err("  header_rules:\n    - {header: x-a, pattern: '(unclosed'}\n");
  EXPECT_NE(err("  header_rules:\n    - {header: 'bad name', pattern: x}\n").find("is not a valid header name"),
            std::string::npos);
  EXPECT_NE(err("  header_rules:\n    - {pattern: x}\n").find("missing required key 'header'"), std::string::npos);
  EXPECT_NE(err("  memory: {high: 0.3, low: 0.5}\n").find("low (0.500000) must be below high"), std::string::npos);
  EXPECT_NE(err("  memory: {high: 1.5}\n").find("must be between 0 and 1"), std::string::npos);
  EXPECT_EQ(err("  memory: {high: 80%, low: 40%}\n"), "OK");
  EXPECT_NE(err("  concurrency: {max: 0}\n").find("expected an integer from 1"), std::string::npos);
  EXPECT_NE(err("  concurrency: {max: 5, status: 500}\n").find("status must be 503 (overloaded) or 429"),
            std::string::npos);
  EXPECT_NE(err("  audit_log: /nonexistent-dir/a.log\n").find("of the audit log does not exist"), std::string::npos);
  EXPECT_NE(error_of(kUp + "models:\n  - {name: m, upstream: u, allow_headers: {mode: keep, names: [a]}}\n")
                .find("mode must be drop or reject, got 'keep'"),
            std::string::npos);
  EXPECT_NE(error_of("server: {min_body_rate: {bytes: 5}}\n" + kUp + kModels).find("unknown key 'bytes'"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::control

// ---------------------------------------------------------------------------
// auth: keys as salted hashes, teams, allowed models, limits.

namespace sluice::control {
namespace {

// The key "abc": its salt starts with the key's lookup hint (the first 8 hex
// of SHA-256("abc")), as `sluice keys hash` makes it.
const std::string kHashA = "sha256:ba7816bf000000000000000000000000:"
                           "0931562d036b5615413a389f00c15f0cec3fbfcbe1281f052aa1e3ce2a450c3c";

TEST(ConfigAuth, KeysTeamsModelsAndLimits) {
  Settings s = load_ok(kUp + kModels +
                       "auth:\n"
                       "  keys:\n"
                       "    - id: team-a-prod\n"
                       "      hash: \"" + kHashA + "\"\n"
                       "      team: team-a\n"
                       "      models: [\"gpt-4o*\", llama3]\n"
                       "      limits: {rpm: 600, tpm: 200000, max_concurrent: 20, tokens_per_day: 5000000, "
                       "usd_per_month: 100}\n"
                       "  teams:\n"
                       "    - {name: team-a, limits: {tpm: 500000}}\n");
  ASSERT_TRUE(s.auth.enabled());
  ASSERT_EQ(s.auth.keys.size(), 1u);
  const auto& k = s.auth.keys[0];
  EXPECT_EQ(k.id, "team-a-prod");
  EXPECT_EQ(k.team, "team-a");
  EXPECT_EQ(k.models, (std::vector<std::string>{"gpt-4o*", "llama3"}));
  EXPECT_EQ(k.limits.rpm, 600u);
  EXPECT_EQ(k.limits.max_concurrent, 20u);
  EXPECT_DOUBLE_EQ(*k.limits.usd_per_month, 100.0);
  EXPECT_FALSE(k.limits.usd_per_day.has_value());
  EXPECT_EQ(s.auth.index.find("abc"), 0);
  EXPECT_EQ(s.auth.index.find("abd"), -1);
  ASSERT_EQ(k.team_index, 0u);
  EXPECT_EQ(s.auth.teams[k.team_index].limits.tpm, 500000u);
  EXPECT_FALSE(load_ok(kUp + kModels).auth.enabled());
}

TEST(ConfigAuth, ErrorsNameTheirPlace) {
  auto err = [](const std::string& auth) { return error_of(kUp + kModels + "auth:\n" + auth); };
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"md5:x\"}\n").find("auth.keys[0].hash: malformed key hash"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\", team: nope}\n").find("unknown team 'nope'"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\", limits: {rpm: -5}}\n").find("expected an integer from 0"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\", limits: {usd_per_day: lots}}\n")
                .find("expected a non-negative amount in USD"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\"}\n    - {id: a, hash: \"" + kHashA + "\"}\n")
                .find("duplicate key id 'a'"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\"}\n    - {id: b, hash: \"" + kHashA + "\"}\n")
                .find("the same key hash is given twice"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {id: a, hash: \"" + kHashA + "\", models: []}\n").find("allows nothing"),
            std::string::npos);
  EXPECT_NE(err("  keys:\n    - {hash: \"" + kHashA + "\"}\n").find("missing required key 'id'"), std::string::npos);
  EXPECT_NE(error_of(kUp + kModels + "limits: {state_file: /nonexistent-dir/b.state}\n").find("of the state file"),
            std::string::npos);
  EXPECT_NE(error_of(kUp + kModels + "limits: {redis: {address: \"127.0.0.1:6379\"}}\n").find("need backend: redis"),
            std::string::npos);
  EXPECT_NE(error_of(kUp + kModels + "limits: {backend: redis, redis: {on_failure: maybe}}\n")
                .find("on_failure must be fail_open, fail_closed or local_fallback"),
            std::string::npos);
  Settings redis = load_ok(kUp + kModels +
                           "limits: {backend: redis, window: 2s, redis: {address: \"127.0.0.2:7000\", timeout: 15ms, "
                           "on_failure: fail_closed, expected_replicas: 3}}\n");
  EXPECT_TRUE(redis.redis.enabled);
  EXPECT_EQ(redis.redis.host, "127.0.0.2");
  EXPECT_EQ(redis.redis.port, 7000);
  EXPECT_EQ(redis.redis.timeout, std::chrono::milliseconds(15));
  EXPECT_EQ(redis.redis.on_failure, Settings::RedisBackend::OnFailure::kFailClosed);
  EXPECT_EQ(redis.redis.expected_replicas, 3u);
  EXPECT_EQ(redis.limits_window, std::chrono::seconds(2));
  EXPECT_NE(error_of(kUp + kModels + "pricing:\n  - {model: m, input_per_mtok: -1, output_per_mtok: 1}\n")
                .find("expected a non-negative price"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::control
