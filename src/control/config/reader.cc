#include "control/config/reader.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <charconv>
#include <cctype>
#include <limits>

namespace sluice::control::config {
namespace {

// Longest accepted duration. Far beyond any sensible timeout, and small enough
// that now() + timeout cannot overflow a nanosecond steady_clock.
constexpr int64_t kMaxDurationMs = int64_t{8760} * 3600 * 1000;

std::string describe(const YAML::Node& n) {
  if (is_empty(n)) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  const std::string& v = n.Scalar();
  return v.size() <= 80 ? "'" + v + "'" : "'" + v.substr(0, 80) + "...'";
}

std::string join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (std::string_view s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool is_ipv6(const std::string& s) {
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

}  // namespace

bool is_empty(const YAML::Node& n) { return n.IsNull() || !n.IsDefined(); }

std::string in_quotes(std::string_view s) { return "'" + std::string(s) + "'"; }

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

bool is_http_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || (c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr);
  });
}

std::string check_log_destination(const std::string& log, std::string_view what) {
  if (log == "stdout" || log == "stderr" || log == "off") return "";
  namespace fs = std::filesystem;
  std::error_code ec;
  if (log.back() == '/' || fs::is_directory(log, ec))
    return in_quotes(log) + " is a directory (expected stdout, stderr, off or a file path)";
  fs::path dir = fs::path(log).parent_path();
  if (!dir.empty() && !fs::is_directory(dir, ec))
    return "directory " + in_quotes(dir.string()) + " of the " + std::string(what) + " does not exist";
  return "";
}

std::optional<uint64_t> parse_u64(std::string_view digits) {
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || p != digits.data() + digits.size()) return std::nullopt;
  return v;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace((unsigned char)s.front())) s.remove_prefix(1);
  while (!s.empty() && std::isspace((unsigned char)s.back())) s.remove_suffix(1);
  return s;
}

bool is_ipv4(const std::string& s) {
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

std::string split_host_port(std::string_view in, std::string& host, std::string_view& port,
                            bool& has_port, bool& bracketed) {
  bracketed = !in.empty() && in.front() == '[';
  std::string_view rest;
  if (bracketed) {
    size_t close = in.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    host = std::string(in.substr(1, close - 1));
    rest = in.substr(close + 1);
  } else {
    size_t colon = in.find(':');
    if (colon != std::string_view::npos && in.find(':', colon + 1) != std::string_view::npos)
      return "IPv6 addresses must be written in brackets, e.g. [::1]:8080";
    host = std::string(in.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : in.substr(colon);
  }
  has_port = !rest.empty();
  if (has_port && rest.front() != ':') return "unexpected " + in_quotes(rest) + " after the host";
  port = has_port ? rest.substr(1) : std::string_view();
  if (host.empty()) return "missing host";
  if (bracketed && !is_ipv6(host)) return "invalid IPv6 address " + in_quotes(host);
  return "";
}

void Reader::fail(const YAML::Mark& mark, std::string_view path, std::string_view what) const {
  int line = mark.is_null() ? 0 : mark.line, col = mark.is_null() ? 0 : mark.column;
  std::string msg =
      source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(col + 1) + ": ";
  if (!path.empty()) msg.append(path).append(": ");
  msg.append(what);
  throw ConfigError{std::move(msg)};
}

std::string Reader::where(const Field& f) const {
  int line = f.mark.is_null() ? 0 : f.mark.line, col = f.mark.is_null() ? 0 : f.mark.column;
  return source_ + ":" + std::to_string(line + 1) + ":" + std::to_string(col + 1) + ": " + f.path + ": ";
}

void Reader::fail_flag(std::string_view flag, std::string_view what) const {
  throw ConfigError{std::string(flag) + ": " + std::string(what)};
}

Mapping Reader::mapping(const Field& f, std::initializer_list<std::string_view> allowed) const {
  Mapping m{{}, f};
  if (is_empty(f.node)) return m;
  if (!f.node.IsMap()) fail(f, "expected a mapping (key: value), got " + describe(f.node));
  for (auto it = f.node.begin(); it != f.node.end(); ++it) {
    // Copies on purpose: `it->` yields a temporary proxy that references would outlive.
    YAML::Node key = it->first, value = it->second;
    if (!key.IsScalar()) fail(key.Mark(), f.path, "expected a string key, got " + describe(key));
    std::string name = key.Scalar();
    std::string path = f.path.empty() ? name : f.path + "." + name;
    if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), name) == allowed.end())
      fail(key.Mark(), path,
           "unknown key " + in_quotes(name) + " (expected one of: " + join(allowed) + ")" +
               suggestion(name, allowed));
    if (const Field* first = m.find(name))
      fail(key.Mark(), path,
           "duplicate key " + in_quotes(name) + " (first set at line " +
               std::to_string(first->key_mark.line + 1) + ")");
    YAML::Mark mark = is_empty(value) ? key.Mark() : value.Mark();
    m.entries.emplace_back(std::move(name), Field{value, std::move(path), mark, key.Mark()});
  }
  return m;
}

const Field& Reader::require(const Mapping& m, std::string_view key) const {
  const Field* f = m.find(key);
  if (f && !is_empty(f->node)) return *f;
  if (f) fail(*f, "missing required key " + in_quotes(key) + " (it has no value)");
  std::string path =
      m.self.path.empty() ? std::string(key) : m.self.path + "." + std::string(key);
  fail(m.self.mark, path, "missing required key " + in_quotes(key));
}

std::vector<Field> Reader::sequence(const Field& f) const {
  std::vector<Field> out;
  if (is_empty(f.node)) return out;
  if (!f.node.IsSequence()) fail(f, "expected a list, got " + describe(f.node));
  for (size_t i = 0; i < f.node.size(); ++i) {
    YAML::Node item = f.node[i];
    YAML::Mark mark = item.Mark().is_null() ? f.mark : item.Mark();
    out.push_back(Field{item, f.path + "[" + std::to_string(i) + "]", mark, mark});
  }
  return out;
}

const std::string& Reader::scalar(const Field& f, std::string_view expected) const {
  if (!f.node.IsScalar())
    fail(f, "expected " + std::string(expected) + ", got " + describe(f.node));
  return f.node.Scalar();
}

std::string Reader::text(const Field& f, std::string_view expected) const {
  std::string s = scalar(f, expected);
  if (s.empty()) fail(f, "expected " + std::string(expected) + ", got an empty string");
  if (has_control_chars(s)) fail(f, "control characters (CR, LF, NUL, ...) are not allowed");
  return s;
}

bool Reader::boolean(const Field& f) const {
  bool b = false;
  if (!f.node.IsScalar() || !YAML::convert<bool>::decode(f.node, b))
    fail(f, "expected true or false, got " + describe(f.node));
  return b;
}

uint64_t Reader::integer(const Field& f, uint64_t min, uint64_t max) const {
  std::string expected = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  std::optional<uint64_t> v = parse_u64(trim(scalar(f, expected)));
  if (!v || *v < min || *v > max) fail(f, "expected " + expected + ", got " + describe(f.node));
  return *v;
}

double Reader::fraction(const Field& f) const {
  const std::string expected = "a fraction between 0 and 1 (e.g. 0.75) or a percentage (e.g. 75%)";
  std::string_view text = trim(scalar(f, expected));
  const bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size())
    fail(f, "expected " + expected + ", got " + describe(f.node));
  if (percent) v /= 100;
  if (!(v > 0 && v < 1)) fail(f, "must be between 0 and 1 (exclusive), got " + describe(f.node));
  return v;
}

gateway::Millis Reader::duration(const Field& f) const {
  static constexpr std::pair<std::string_view, int64_t> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}};
  const std::string expected =
      "a duration: integer milliseconds or a string like 250ms, 10s, 2m, 1h";
  auto [n, unit] = number_and_unit(f, expected, "e.g. 1500ms");
  int64_t mult = 0;
  if (unit.empty()) mult = 1;
  for (const auto& [name, ms] : kUnits)
    if (unit == name) mult = ms;
  if (mult == 0)
    fail(f, "unknown duration unit " + in_quotes(unit) + " (expected ms, s, m or h)");
  if (n == 0) fail(f, "must be greater than zero");
  if (n > static_cast<uint64_t>(kMaxDurationMs / mult))
    fail(f, "is too long (at most 8760h, one year)");
  return gateway::Millis(static_cast<int64_t>(n) * mult);
}

uint64_t Reader::size(const Field& f) const {
  static constexpr std::pair<std::string_view, uint64_t> kUnits[] = {{"B", 1},
                                                                     {"KB", 1000},
                                                                     {"MB", 1000'000},
                                                                     {"GB", 1000'000'000},
                                                                     {"KiB", 1ull << 10},
                                                                     {"MiB", 1ull << 20},
                                                                     {"GiB", 1ull << 30}};
  const std::string expected = "a size: integer bytes or a string like 512KiB, 16MiB, 1GB";
  auto [n, unit] = number_and_unit(f, expected, "e.g. 1536KiB");
  uint64_t mult = 0;
  if (unit.empty()) mult = 1;
  for (const auto& [name, bytes] : kUnits)
    if (unit == name) mult = bytes;
  if (mult == 0)
    fail(f,
         "unknown size unit " + in_quotes(unit) + " (expected B, KB, MB, GB, KiB, MiB or GiB)");
  if (n == 0) fail(f, "must be greater than zero");
  if (n > std::numeric_limits<uint64_t>::max() / mult)
    fail(f, "is too large (does not fit in 64 bits)");
  return n * mult;
}

std::pair<uint64_t, std::string_view> Reader::number_and_unit(const Field& f, const std::string& expected,
                                                              std::string_view smaller_unit_example) const {
  std::string_view s = trim(scalar(f, expected));
  if (s.starts_with('-')) fail(f, "must not be negative, got " + describe(f.node));
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  if (digits == 0) fail(f, "expected " + expected + ", got " + describe(f.node));
  if (digits < s.size() && s[digits] == '.')
    fail(f, "expected a whole number, got " + describe(f.node) + " (use a smaller unit, " +
                std::string(smaller_unit_example) + ")");
  std::optional<uint64_t> n = parse_u64(s.substr(0, digits));
  if (!n) fail(f, "is too large (does not fit in 64 bits)");
  return {*n, trim(s.substr(digits))};
}

}  // namespace sluice::control::config
