#include "obs/metrics_merge.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace sluice::obs {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) { return s.ends_with(suffix); }

// The gauges a merge takes the largest value of (they describe, not count).
bool max_gauge(std::string_view name) {
  for (std::string_view s : {"_info", "_generation", "_timestamp_seconds", "_start_time_seconds", "_limit_bytes"})
    if (ends_with(name, s)) return true;
  return false;
}

std::string_view sample_name(std::string_view series) { return series.substr(0, series.find('{')); }

bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (!name_char(s[i], i == 0)) return false;
  return true;
}

// The length of `name{labels}` at the start of a sample line (label values
// may hold any character, quoted and escaped), or 0 when it is not one.
size_t series_length(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i == 0 || i == line.size()) return 0;
  if (line[i] == '{') {
    bool quoted = false;
    for (++i; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted) {
        if (c == '\\') ++i;
        else if (c == '"') quoted = false;
      } else if (c == '"') {
        quoted = true;
      } else if (c == '}') {
        break;
      }
    }
    if (i >= line.size()) return 0;
    ++i;
  }
  return i < line.size() && line[i] == ' ' ? i : 0;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    auto end = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v)).ptr;
    return std::string(buf, end);
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

bool parse_value(std::string_view s, double& out) {
  if (s == "+Inf") return out = INFINITY, true;
  if (s == "-Inf") return out = -INFINITY, true;
  if (s == "NaN") return out = NAN, true;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

MetricsMerger::Family* MetricsMerger::family_of(const std::string& name) {
  if (auto it = families_.find(name); it != families_.end()) return &it->second;
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (!ends_with(name, suffix)) continue;
    if (auto it = families_.find(name.substr(0, name.size() - suffix.size())); it != families_.end()) return &it->second;
  }
  return nullptr;
}

void MetricsMerger::update(size_t slot, std::string_view text) {
  if (slot >= current_.size()) return;
  std::map<std::string, double> values;
  std::string pending_help;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      std::string_view rest = line.substr(7);
      const size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      const std::string_view value = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
      if (!valid_name(name) || (line[2] == 'T' && !valid_name(value))) continue;
      auto [it, added] = families_.try_emplace(name);
      if (added) family_order_.push_back(name);
      if (line[2] == 'H') it->second.help = std::string(value);
      else it->second.type = std::string(value);
      continue;
    }
    if (line.front() == '#') continue;
    // name{labels} value [timestamp]
    const size_t sp = series_length(line);
    if (sp == 0) continue;
    std::string series(line.substr(0, sp));
    std::string_view v = line.substr(sp + 1);
    v = v.substr(0, v.find(' '));
    double d = 0;
    if (!parse_value(v, d)) continue;
    const std::string name(sample_name(series));
    if (!family_of(name)) {  // a sample without TYPE: its own untyped family
      families_[name].type = "untyped";
      family_order_.push_back(name);
    }
    Family& fam = *family_of(name);
    if (std::find(fam.series.begin(), fam.series.end(), series) == fam.series.end()) fam.series.push_back(series);
    values[std::move(series)] = d;
  }
  current_[slot] = std::move(values);
}

void MetricsMerger::retire(size_t slot) {
  if (slot >= current_.size()) return;
  for (const auto& [series, v] : current_[slot]) {
    const Family* f = family_of(std::string(sample_name(series)));
    if (f && cumulative(f->type)) carried_[series] += v;
  }
  current_[slot].clear();
}

std::string MetricsMerger::render() const {
  std::string out;
  out.reserve(64 * 1024);
  for (const std::string& name : family_order_) {
    const Family& f = families_.at(name);
    if (f.series.empty()) continue;
    if (!f.help.empty()) out += "# HELP " + name + " " + f.help + "\n";
    out += "# TYPE " + name + " " + (f.type.empty() ? "untyped" : f.type) + "\n";
    const bool take_max = f.type == "gauge" && max_gauge(name);
    for (const std::string& series : f.series) {
      bool any = false;
      double v = 0;
      if (auto it = carried_.find(series); it != carried_.end()) v = it->second, any = true;
      for (const auto& slot : current_) {
        auto it = slot.find(series);
        if (it == slot.end()) continue;
        v = take_max && any ? std::max(v, it->second) : v + it->second;
        any = true;
      }
      if (any) out += series + " " + format_value(v) + "\n";
    }
  }
  return out;
}

}  // namespace sluice::obs
