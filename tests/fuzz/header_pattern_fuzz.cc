// Differential fuzzing of the header-rule fast path: for every pattern that
// RE2 accepts and SimplePattern::compile() claims to reproduce, both must
// give the same answer on the value.
//
// Input: a pattern, a NUL byte, then the value (without a NUL, the whole
// input is both pattern and value).
#include <re2/re2.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "policy/simple_pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string pattern(in.substr(0, nul));
  const std::string_view value = nul == std::string_view::npos ? in : in.substr(nul + 1);
  if (pattern.size() > 200) return 0;
  auto fast = sluice::policy::SimplePattern::compile(pattern);
  if (!fast) return 0;
  RE2::Options o;
  o.set_log_errors(false);
  RE2 re(pattern, o);
  if (!re.ok()) return 0;  // the config loader rejects it before the fast path is ever used
  if (fast->full_match(value) != RE2::FullMatch(value, re)) __builtin_trap();
  return 0;
}
