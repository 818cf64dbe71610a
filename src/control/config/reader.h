// The field readers every config section shares: a YAML value with its key
// path and position (Field), a checked mapping (Mapping), typed reads that fail
// with "FILE:LINE:COL: key.path: message" (Reader), and the text helpers more
// than one section needs.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gateway/settings.h"

namespace sluice::control::config {

// A config error unwinds to the API boundary as this exception (exceptions are
// fine at config load, DESIGN.md section 5), which keeps each check one line.
struct ConfigError {
  std::string message;
};

// A YAML value together with where it is: its dotted key path and the position
// to report (the value's, or its key's when the value is empty).
struct Field {
  YAML::Node node;
  std::string path;
  YAML::Mark mark;
  YAML::Mark key_mark;  // of its key in a mapping; else the same as mark
};

bool is_empty(const YAML::Node& n);

std::string in_quotes(std::string_view s);

size_t edit_distance(std::string_view a, std::string_view b);

// "; did you mean 'x'?" for the closest candidate within a typo's reach, else "".
template <class Names>
std::string suggestion(std::string_view got, const Names& candidates) {
  std::string_view best;
  size_t best_d = 3;
  for (std::string_view c : candidates) {
    size_t d = edit_distance(got, c);
    if (d < best_d && d * 2 < c.size()) best = c, best_d = d;
  }
  return best.empty() ? "" : "; did you mean " + in_quotes(best) + "?";
}

bool has_control_chars(std::string_view s);
bool is_http_token(std::string_view s);  // RFC 9110 token (header names)
// Why `log` cannot be a log destination (stdout, stderr, off or a file in an
// existing directory), or "".
// `what` names it in the message ("access log").
std::string check_log_destination(const std::string& log, std::string_view what);
std::optional<uint64_t> parse_u64(std::string_view digits);
std::string_view trim(std::string_view s);
bool is_ipv4(const std::string& s);

// "host:port" or "[v6]:port". Fills host (without brackets) and the port text;
// returns what is wrong, or "" when the shape is right.
std::string split_host_port(std::string_view in, std::string& host, std::string_view& port, bool& has_port,
                            bool& bracketed);

// A mapping read and checked once: known keys only, each at most once.
class Mapping {
 public:
  std::vector<std::pair<std::string, Field>> entries;
  Field self;

  const Field* find(std::string_view key) const {
    for (const auto& [k, f] : entries)
      if (k == key) return &f;
    return nullptr;
  }
};

// Reads typed values out of YAML nodes; each failure becomes one ConfigError
// naming the source, position and key path.
class Reader {
 public:
  explicit Reader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view path, std::string_view what) const;
  [[noreturn]] void fail(const Field& f, std::string_view what) const { fail(f.mark, f.path, what); }
  // "FILE:LINE:COL: path: " for a message that is not an error (a warning).
  std::string where(const Field& f) const;
  // A command-line override, checked by the same rules as the key it replaces.
  [[noreturn]] void fail_flag(std::string_view flag, std::string_view what) const;

  // `allowed` empty = any key (e.g. header names).
  Mapping mapping(const Field& f, std::initializer_list<std::string_view> allowed = {}) const;
  const Field& require(const Mapping& m, std::string_view key) const;
  std::vector<Field> sequence(const Field& f) const;
  const std::string& scalar(const Field& f, std::string_view expected) const;
  // A non-empty single-line string.
  std::string text(const Field& f, std::string_view expected = "a string") const;
  bool boolean(const Field& f) const;
  uint64_t integer(const Field& f, uint64_t min, uint64_t max) const;
  gateway::Millis duration(const Field& f) const;
  uint64_t size(const Field& f) const;
  // A number strictly between 0 and 1 (0.75), or a percentage ("75%").
  double fraction(const Field& f) const;

 private:
  // "16MiB" -> {16, "MiB"}; "5000" -> {5000, ""}. Whitespace between is allowed.
  std::pair<uint64_t, std::string_view> number_and_unit(const Field& f, const std::string& expected,
                                                        std::string_view smaller_unit_example) const;

  std::string source_;
};

}  // namespace sluice::control::config
