// obs/: what the gateway tells operators about itself. This header is the
// metrics half: families are declared once in a Registry at start-up, each
// worker thread writes only to its own Shard, and a scrape merges every shard
// into the Prometheus text format (0.0.4). The access log is access_log.h.
//
// Threading: a Shard has exactly one writer, its owner thread. Cells are
// std::atomic written with a relaxed load + store (no lock-prefixed
// read-modify-write), so another thread may read them at any time. The owner
// looks series up without locking; creating a new labelled series takes the
// shard's own mutex, which a scrape also takes while it walks the shard. Cells
// never move once created, so callers may cache Counter& / Histogram&.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::obs {

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

// Typed handles to declared families, so a counter id cannot be used to ask
// for a histogram. `slot` indexes the family among those of its type.
struct CounterFamily { uint32_t slot; };
struct GaugeFamily { uint32_t slot; };
struct HistogramFamily { uint32_t slot; };

namespace detail {
inline void relaxed_add(std::atomic<uint64_t>& a, uint64_t n) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
}  // namespace detail

class Counter {
 public:
  void inc(uint64_t n = 1) { detail::relaxed_add(v_, n); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Gauges are summed across shards at scrape, so a per-worker gauge such as
// "requests in flight" is add(+1)/add(-1) on the worker's own shard. set() is
// for values only one shard reports (e.g. from the main thread's shard).
class Gauge {
 public:
  void add(int64_t d) {
    v_.store(v_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  void set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Histogram {
 public:
  // `upper_bounds` must outlive the histogram (the Registry owns them).
  explicit Histogram(std::span<const double> upper_bounds);

  // NaN is ignored: it would poison the sum forever.
  void observe(double v) {
    if (v != v) return;
    // First bound >= v: Prometheus buckets are "less than or equal".
    const size_t i = static_cast<size_t>(
        std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    detail::relaxed_add(buckets_[i], 1);
    sum_.store(sum_.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
  }

  std::span<const double> upper_bounds() const { return bounds_; }
  // Observations in bucket i alone (not cumulative); i == upper_bounds().size()
  // is the +Inf bucket.
  uint64_t bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::span<const double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// Bucket layouts shared by the gateway's histograms.
// Seconds from 0.5 ms to 60 s: resolves gateway overhead (sub-ms) as well as
// time to first token and whole-request latency (seconds).
std::vector<double> latency_buckets();
// Token counts 1, 2, 4, ... 32768.
std::vector<double> token_buckets();

// Label values beyond this length are truncated before lookup, so a client
// cannot make a series key arbitrarily large.
inline constexpr size_t kMaxLabelValueBytes = 256;
inline constexpr size_t kMaxLabels = 8;
// Values of the series that collects everything beyond a family's series limit.
inline constexpr std::string_view kOverflowLabelValue = "__overflow__";

namespace detail {

struct FamilyDesc {
  std::string name;
  std::string help;
  MetricType type;
  uint32_t slot;
  std::vector<std::string> label_names;
  std::vector<double> upper_bounds;  // histograms only
};

using LabelValues = std::vector<std::string>;
using LabelViews = std::span<const std::string_view>;

// A fast seeded hash of label values. Inline because every lookup pays it;
// seeded per registry so clients cannot precompute colliding label values.
inline uint64_t hash_mix(uint64_t h, uint64_t w) {
  return std::rotl(h ^ (w * 0x9e3779b97f4a7c15ull), 31) * 0xc2b2ae3d27d4eb4full;
}
inline uint64_t hash_labels(LabelViews values, uint64_t seed) {
  uint64_t h = seed;
  for (std::string_view v : values) {
    const char* p = v.data();
    size_t n = v.size();
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      h = hash_mix(h, w);
    }
    uint64_t w = 0;  // the last 0..7 bytes, read in at most two loads
    if (n >= 4) {
      uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n - 4, 4);
      w = uint64_t{a} << 32 | b;
    } else if (n > 0) {
      w = uint64_t{static_cast<uint8_t>(p[0])} << 16 |
          uint64_t{static_cast<uint8_t>(p[n / 2])} << 8 | static_cast<uint8_t>(p[n - 1]);
    }
    h = hash_mix(h, w ^ (uint64_t{v.size()} << 56 | v.size()));  // length separates values
  }
  h ^= h >> 32;  // the low bits pick the slot: make them depend on every bit
  h *= 0xd6e8feb86659fd93ull;
  return h ^ (h >> 32);
}

// The series of one family inside one shard: entries in a deque (elements
// never move, so cells can be cached and the scrape can walk them) and an
// open-addressing index over them. Only the owner thread inserts, under the
// shard mutex; it reads the index without locking, and the scrape reads only
// `entries`, under the mutex.
template <class Cell>
class SeriesTable {
 public:
  struct Entry {
    template <class... Args>
    Entry(LabelValues k, uint64_t h, Args&&... args)
        : key(std::move(k)), hash(h), cell(std::forward<Args>(args)...) {}
    const LabelValues key;
    const uint64_t hash;
    Cell cell;
  };

  Cell* find(LabelViews values, uint64_t h) const {
    if (slots_.empty()) return nullptr;
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Entry* e = slots_[i];
      if (e == nullptr) return nullptr;
      if (e->hash == h && same(e->key, values)) return &e->cell;
    }
  }

  template <class... Args>
  Cell& insert(LabelValues key, uint64_t h, Args&&... args) {
    Entry& e = entries_.emplace_back(std::move(key), h, std::forward<Args>(args)...);
    if (2 * entries_.size() > slots_.size()) {
      slots_.assign(std::bit_ceil(std::max<size_t>(8, 4 * entries_.size())), nullptr);
      for (Entry& x : entries_) place(&x);
    } else {
      place(&e);
    }
    return e.cell;
  }

  size_t size() const { return entries_.size(); }
  const std::deque<Entry>& entries() const { return entries_; }

  const FamilyDesc* desc = nullptr;
  Cell* unlabelled = nullptr;  // the only series of a family without labels
  Cell* overflow = nullptr;    // created when the series limit is first hit

 private:
  static bool same(const LabelValues& key, LabelViews values) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (std::string_view(key[i]) != values[i]) return false;
    }
    return true;  // both sides have the family's label count
  }
  void place(Entry* e) {
    const size_t mask = slots_.size() - 1;
    size_t i = e->hash & mask;
    while (slots_[i] != nullptr) i = (i + 1) & mask;
    slots_[i] = e;
  }

  std::deque<Entry> entries_;
  std::vector<Entry*> slots_;  // power of two, at most half full
};

}  // namespace detail

class Registry;

// One worker's metrics. Only the owner thread calls counter()/gauge()/
// histogram() and writes the cells they return.
class Shard {
 public:
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;

  // Finds or creates the series with these label values (in the order the
  // family declared its label names). Label values may be untrusted: they are
  // truncated to kMaxLabelValueBytes, and once a family holds the registry's
  // series limit in this shard, new combinations all land in one series whose
  // values are kOverflowLabelValue. A wrong number of values is a bug: it
  // asserts in debug builds and lands in the overflow series in release.
  Counter& counter(CounterFamily f, std::initializer_list<std::string_view> values = {}) {
    return find(counters_[f.slot], as_span(values));
  }
  Counter& counter(CounterFamily f, std::span<const std::string_view> values) {
    return find(counters_[f.slot], values);
  }
  Gauge& gauge(GaugeFamily f, std::initializer_list<std::string_view> values = {}) {
    return find(gauges_[f.slot], as_span(values));
  }
  Gauge& gauge(GaugeFamily f, std::span<const std::string_view> values) {
    return find(gauges_[f.slot], values);
  }
  Histogram& histogram(HistogramFamily f, std::initializer_list<std::string_view> values = {}) {
    return find(histograms_[f.slot], as_span(values));
  }
  Histogram& histogram(HistogramFamily f, std::span<const std::string_view> values) {
    return find(histograms_[f.slot], values);
  }

 private:
  friend class Registry;
  template <class Cell>
  using Table = detail::SeriesTable<Cell>;

  Shard(const Registry& registry, size_t series_limit, uint64_t seed);

  static std::span<const std::string_view> as_span(std::initializer_list<std::string_view> v) {
    return {v.begin(), v.size()};
  }

  template <class Cell>
  Cell& find(Table<Cell>& t, std::span<const std::string_view> values) {
    if (t.unlabelled != nullptr && values.empty()) return *t.unlabelled;
    if (values.size() == t.desc->label_names.size()) [[likely]] {
      bool short_values = true;
      for (auto v : values) short_values &= v.size() <= kMaxLabelValueBytes;
      if (short_values) [[likely]] {
        // Unlocked: only this thread ever modifies the table.
        if (Cell* c = t.find(values, detail::hash_labels(values, seed_))) [[likely]] return *c;
      }
    }
    return create(t, values);
  }

  template <class Cell>
  Cell& create(Table<Cell>& t, std::span<const std::string_view> values);
  template <class Cell>
  Cell& overflow(Table<Cell>& t);
  template <class Cell>
  Cell& emplace(Table<Cell>& t, std::span<const std::string_view> key);

  const size_t series_limit_;
  const uint64_t seed_;
  // Held by the owner while it inserts and by a scrape while it reads.
  mutable std::mutex mu_;
  std::vector<Table<Counter>> counters_;
  std::vector<Table<Gauge>> gauges_;
  std::vector<Table<Histogram>> histograms_;
};

// Declares families and merges shards at scrape. Declare every family before
// the first add_shard(); declaration errors (bad names, duplicates, unsorted
// buckets, declaring after shards exist) throw std::invalid_argument or
// std::logic_error, since they happen only at start-up.
class Registry {
 public:
  static constexpr size_t kDefaultSeriesLimit = 10'000;

  // `series_limit` caps the series of each family in each shard.
  explicit Registry(size_t series_limit = kDefaultSeriesLimit);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily counter(std::string name, std::string help,
                        std::vector<std::string> label_names = {});
  GaugeFamily gauge(std::string name, std::string help,
                    std::vector<std::string> label_names = {});
  // `upper_bounds` must be finite and strictly increasing; +Inf is implicit.
  HistogramFamily histogram(std::string name, std::string help,
                            std::vector<double> upper_bounds,
                            std::vector<std::string> label_names = {});

  // One per worker thread (and one for the main thread). The address is stable
  // for the registry's lifetime. Thread-safe.
  Shard& add_shard();

  // Merges every shard: counters, gauges and histograms are summed per label
  // set. Families are sorted by name and series by label values, so equal
  // states render to equal text. Safe to call from any thread at any time.
  std::string render_prometheus() const;
  void render_prometheus(std::string& out) const;  // appends

 private:
  friend class Shard;
  const detail::FamilyDesc& declare(MetricType type, std::string name, std::string help,
                                    std::vector<std::string> label_names,
                                    std::vector<double> upper_bounds);

  const size_t series_limit_;
  const uint64_t seed_;    // for detail::hash_labels
  mutable std::mutex mu_;  // guards shards_ (families are frozen once a shard exists)
  std::deque<detail::FamilyDesc> families_;  // deque: shards point at descs
  std::vector<const detail::FamilyDesc*> counters_, gauges_, histograms_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

// Process metrics in the same text format, read from /proc/self at call time:
// process_cpu_seconds_total, process_max_fds, process_open_fds,
// process_resident_memory_bytes, process_start_time_seconds,
// process_virtual_memory_bytes (the names the Prometheus client libraries use).
// Metrics that cannot be read are left out.
std::string render_process_metrics();

}  // namespace sluice::obs
