// Pieces of the Prometheus text exposition format (version 0.0.4) shared by
// the registry and the process metrics.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace sluice::obs {

// `s` with every ill-formed UTF-8 subsequence replaced by U+FFFD.
std::string utf8_sanitized(std::string_view s);

// HELP text: backslash and line feed are escaped.
void append_help_escaped(std::string& out, std::string_view help);
// A label value: backslash, double quote and line feed are escaped. The value
// must already be valid UTF-8 (see utf8_sanitized).
void append_label_value_escaped(std::string& out, std::string_view value);
// `{a="x",b="y",le="0.5"}`, or nothing when there are no labels and no `le`.
void append_labels(std::string& out, std::span<const std::string> names,
                   std::span<const std::string> values, std::string_view le);
// A sample value or bucket bound: shortest round-trip decimal, +Inf, -Inf, NaN.
void append_value(std::string& out, double v);

// `# HELP`, `# TYPE` and one unlabelled sample, for scrape-time values.
void append_single_sample(std::string& out, std::string_view name, std::string_view help,
                          std::string_view type, double value);

}  // namespace sluice::obs
