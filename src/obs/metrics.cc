#include "obs/metrics.h"

#include <array>
#include <cassert>
#include <cmath>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "obs/prometheus_text.h"

namespace sluice::obs {

// ---- cells -----------------------------------------------------------------

Histogram::Histogram(std::span<const double> upper_bounds)
    : bounds_(upper_bounds),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(upper_bounds.size() + 1)) {}

uint64_t Histogram::count() const {
  uint64_t n = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) n += bucket(i);
  return n;
}

std::vector<double> latency_buckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5,
          0.75,   1,     1.5,   2,     3,    5,    10,   20,  30,  60};
}

std::vector<double> token_buckets() {
  std::vector<double> b;
  for (double v = 1; v <= 32768; v *= 2) b.push_back(v);
  return b;
}

// ---- shard -----------------------------------------------------------------

Shard::Shard(const Registry& registry, size_t series_limit, uint64_t seed)
    : series_limit_(series_limit), seed_(seed) {
  auto build = [](auto& tables, const std::vector<const detail::FamilyDesc*>& descs) {
    // Sized once: tables are neither copyable nor cheaply movable.
    tables = std::remove_reference_t<decltype(tables)>(descs.size());
    for (size_t i = 0; i < descs.size(); ++i) tables[i].desc = descs[i];
  };
  build(counters_, registry.counters_);
  build(gauges_, registry.gauges_);
  build(histograms_, registry.histograms_);
  auto unlabelled = [this](auto& tables) {
    for (auto& t : tables) {
      if (t.desc->label_names.empty()) t.unlabelled = &emplace(t, {});
    }
  };
  unlabelled(counters_);
  unlabelled(gauges_);
  unlabelled(histograms_);
}

template <class Cell>
Cell& Shard::create(Table<Cell>& t, std::span<const std::string_view> values) {
  const size_t n = t.desc->label_names.size();
  if (values.size() != n) {
    assert(false && "metric used with the wrong number of label values");
    return overflow(t);
  }
  std::array<std::string_view, kMaxLabels> cut;
  for (size_t i = 0; i < n; ++i) cut[i] = values[i].substr(0, kMaxLabelValueBytes);
  const std::span<const std::string_view> key(cut.data(), n);
  if (Cell* c = t.find(key, detail::hash_labels(key, seed_))) return *c;
  if (t.size() >= series_limit_) return overflow(t);
  return emplace(t, key);
}

template <class Cell>
Cell& Shard::overflow(Table<Cell>& t) {
  if (t.overflow == nullptr) {
    const std::vector<std::string_view> key(t.desc->label_names.size(), kOverflowLabelValue);
    Cell* existing = t.find(key, detail::hash_labels(key, seed_));
    t.overflow = existing != nullptr ? existing : &emplace(t, key);
  }
  return *t.overflow;
}

template <class Cell>
Cell& Shard::emplace(Table<Cell>& t, std::span<const std::string_view> key) {
  detail::LabelValues values(key.begin(), key.end());  // allocate before locking
  const uint64_t h = detail::hash_labels(key, seed_);
  std::lock_guard lock(mu_);
  if constexpr (std::is_same_v<Cell, Histogram>) {
    return t.insert(std::move(values), h, std::span<const double>(t.desc->upper_bounds));
  } else {
    return t.insert(std::move(values), h);
  }
}

template Counter& Shard::create(Table<Counter>&, std::span<const std::string_view>);
template Gauge& Shard::create(Table<Gauge>&, std::span<const std::string_view>);
template Histogram& Shard::create(Table<Histogram>&, std::span<const std::string_view>);

// ---- registry: declaration -------------------------------------------------

namespace {

bool valid_name(std::string_view s, bool allow_colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                       (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

}  // namespace

Registry::Registry(size_t series_limit)
    : series_limit_(series_limit), seed_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}
Registry::~Registry() = default;

const detail::FamilyDesc& Registry::declare(MetricType type, std::string name, std::string help,
                                            std::vector<std::string> label_names,
                                            std::vector<double> upper_bounds) {
  std::lock_guard lock(mu_);
  if (!shards_.empty()) {
    throw std::logic_error("metric family " + name + " declared after the first shard");
  }
  if (!valid_name(name, true)) throw std::invalid_argument("bad metric name: " + name);
  for (const auto& f : families_) {
    if (f.name == name) throw std::invalid_argument("metric declared twice: " + name);
  }
  if (label_names.size() > kMaxLabels) {
    throw std::invalid_argument("too many labels on metric " + name);
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const auto& l = label_names[i];
    if (!valid_name(l, false) || l.starts_with("__") ||
        (type == MetricType::kHistogram && l == "le")) {
      throw std::invalid_argument("bad label name " + l + " on metric " + name);
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == l) throw std::invalid_argument("label " + l + " repeated on " + name);
    }
  }
  if (!upper_bounds.empty() && upper_bounds.back() == INFINITY) upper_bounds.pop_back();
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i]) || (i > 0 && upper_bounds[i] <= upper_bounds[i - 1])) {
      throw std::invalid_argument("histogram buckets must be finite and increasing: " + name);
    }
  }
  auto& slots = type == MetricType::kCounter ? counters_
                : type == MetricType::kGauge ? gauges_
                                             : histograms_;
  auto& d = families_.emplace_back(detail::FamilyDesc{
      std::move(name), std::move(help), type, static_cast<uint32_t>(slots.size()),
      std::move(label_names), std::move(upper_bounds)});
  slots.push_back(&d);
  return d;
}

CounterFamily Registry::counter(std::string name, std::string help,
                                std::vector<std::string> label_names) {
  return {declare(MetricType::kCounter, std::move(name), std::move(help),
                  std::move(label_names), {})
              .slot};
}

GaugeFamily Registry::gauge(std::string name, std::string help,
                            std::vector<std::string> label_names) {
  return {declare(MetricType::kGauge, std::move(name), std::move(help), std::move(label_names),
                  {})
              .slot};
}

HistogramFamily Registry::histogram(std::string name, std::string help,
                                    std::vector<double> upper_bounds,
                                    std::vector<std::string> label_names) {
  return {declare(MetricType::kHistogram, std::move(name), std::move(help),
                  std::move(label_names), std::move(upper_bounds))
              .slot};
}

Shard& Registry::add_shard() {
  std::lock_guard lock(mu_);
  // Shard's constructor is private; make_unique cannot reach it.
  shards_.push_back(std::unique_ptr<Shard>(new Shard(*this, series_limit_, seed_)));
  return *shards_.back();
}

// ---- registry: exposition --------------------------------------------------

namespace {

// Series merged across shards, keyed by label values made valid UTF-8 (two
// raw values that differ only in invalid bytes become one series, as they
// must: the text format cannot show the difference).
template <class V>
using Merged = std::map<std::vector<std::string>, V>;

struct HistogramSum {
  std::vector<uint64_t> buckets;
  double sum = 0;
};

std::vector<std::string> clean_key(const detail::LabelValues& raw) {
  std::vector<std::string> key;
  key.reserve(raw.size());
  for (const auto& v : raw) key.push_back(utf8_sanitized(v));
  return key;
}

void add_into(int64_t& acc, const Gauge& g) { acc += g.value(); }
void add_into(uint64_t& acc, const Counter& c) { acc += c.value(); }
void add_into(HistogramSum& acc, const Histogram& h) {
  const size_t n = h.upper_bounds().size() + 1;
  acc.buckets.resize(n);
  for (size_t i = 0; i < n; ++i) acc.buckets[i] += h.bucket(i);
  acc.sum += h.sum();
}

template <class V, class Cell>
void merge(Merged<V>& out, const detail::SeriesTable<Cell>& t) {
  for (const auto& e : t.entries()) add_into(out[clean_key(e.key)], e.cell);
}

void header(std::string& out, const detail::FamilyDesc& d, std::string_view type) {
  out += "# HELP ";
  out += d.name;
  out += ' ';
  append_help_escaped(out, d.help);
  out += "\n# TYPE ";
  out += d.name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const detail::FamilyDesc& d, std::string_view suffix,
            const std::vector<std::string>& values, std::string_view le, auto value) {
  out += d.name;
  out += suffix;
  append_labels(out, d.label_names, values, le);
  out += ' ';
  if constexpr (std::is_floating_point_v<decltype(value)>) {
    append_value(out, value);
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
  out += '\n';
}

}  // namespace

std::string Registry::render_prometheus() const {
  std::string out;
  render_prometheus(out);
  return out;
}

void Registry::render_prometheus(std::string& out) const {
  std::lock_guard lock(mu_);
  std::vector<const detail::FamilyDesc*> order;
  for (const auto& f : families_) order.push_back(&f);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });

  auto collect = [this](auto& merged, auto member, uint32_t slot) {
    for (const auto& s : shards_) {
      std::lock_guard shard_lock(s->mu_);
      merge(merged, ((*s).*member)[slot]);
    }
  };

  for (const auto* d : order) {
    switch (d->type) {
      case MetricType::kCounter: {
        Merged<uint64_t> m;
        collect(m, &Shard::counters_, d->slot);
        if (m.empty()) break;
        header(out, *d, "counter");
        for (const auto& [k, v] : m) sample(out, *d, "", k, {}, v);
        break;
      }
      case MetricType::kGauge: {
        Merged<int64_t> m;
        collect(m, &Shard::gauges_, d->slot);
        if (m.empty()) break;
        header(out, *d, "gauge");
        for (const auto& [k, v] : m) sample(out, *d, "", k, {}, v);
        break;
      }
      case MetricType::kHistogram: {
        Merged<HistogramSum> m;
        collect(m, &Shard::histograms_, d->slot);
        if (m.empty()) break;
        header(out, *d, "histogram");
        std::string le;
        for (const auto& [k, h] : m) {
          uint64_t cumulative = 0;
          for (size_t i = 0; i < h.buckets.size(); ++i) {
            cumulative += h.buckets[i];
            le.clear();
            if (i < d->upper_bounds.size()) {
              append_value(le, d->upper_bounds[i]);
            } else {
              le = "+Inf";
            }
            sample(out, *d, "_bucket", k, le, cumulative);
          }
          // _count is the +Inf bucket by construction. _sum is read apart
          // from the buckets, so a scrape racing an observe() may count it in
          // one and not yet in the other; the next scrape agrees again.
          sample(out, *d, "_sum", k, {}, h.sum);
          sample(out, *d, "_count", k, {}, cumulative);
        }
        break;
      }
    }
  }
}

}  // namespace sluice::obs
