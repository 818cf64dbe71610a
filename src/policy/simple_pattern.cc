#include "policy/simple_pattern.h"

#include <cctype>
#include <bitset>
#include <cstring>

namespace sluice::policy {

namespace {

constexpr uint32_t kMaxRepeat = 1000;  // RE2's own bound on {n,m}
constexpr uint32_t kUnbounded = UINT32_MAX;

using Chars = std::bitset<128>;

bool is_meta(char c) { return std::strchr("\\^$.|?*+()[]{}", c) != nullptr && c != '\0'; }

// \d \w \s and escaped punctuation; false for anything else (\b, \pN, \x41, ...).
bool escape_class(char c, Chars& out) {
  if (c == 'd') {
    for (char x = '0'; x <= '9'; ++x) out.set(static_cast<size_t>(x));
  } else if (c == 'w') {
    for (int x = 0; x < 128; ++x)
      if (std::isalnum(x) || x == '_') out.set(static_cast<size_t>(x));
  } else if (c == 's') {
    for (char x : {'\t', '\n', '\f', '\r', ' '}) out.set(static_cast<size_t>(x));
  } else if (static_cast<unsigned char>(c) < 128 && std::ispunct(static_cast<unsigned char>(c))) {
    out.set(static_cast<size_t>(c));
  } else {
    return false;
  }
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view p) : p_(p) {}

  // [...] after the '['; positive ASCII sets only.
  bool bracket(Chars& out) {
    if (at_end() || peek() == '^' || peek() == ']') return false;
    bool first = true;
    while (!at_end() && peek() != ']') {
      if (peek() == '[') return false;  // [:alpha:] and friends
      int lo;
      if (peek() == '\\') {
        ++i_;
        if (at_end()) return false;
        const char e = p_[i_++];
        if (e == 'd' || e == 'w' || e == 's') {
          if (!escape_class(e, out)) return false;
          first = false;
          continue;
        }
        Chars one;
        if (!escape_class(e, one)) return false;
        lo = e;
      } else {
        lo = static_cast<unsigned char>(p_[i_++]);
      }
      if (lo >= 128) return false;
      // A '-' is literal only first or last; anywhere else it must make a range.
      if (lo == '-' && !first && !(at_end() || peek() == ']')) return false;
      if (!at_end() && peek() == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        int hi;
        if (peek() == '\\') {
          ++i_;
          if (at_end()) return false;
          const char e = p_[i_++];
          Chars one;
          if (e == 'd' || e == 'w' || e == 's' || !escape_class(e, one)) return false;
          hi = e;
        } else {
          hi = static_cast<unsigned char>(p_[i_++]);
        }
        if (hi >= 128 || hi < lo) return false;
        for (int x = lo; x <= hi; ++x) out.set(static_cast<size_t>(x));
      } else {
        out.set(static_cast<size_t>(lo));
      }
      first = false;
    }
    if (at_end()) return false;
    ++i_;  // ']'
    return out.any();
  }

  // ? * + {n} {n,} {n,m}, and a lazy '?' after any of them (same full-match meaning).
  bool quantifier(uint32_t& min, uint32_t& max) {
    min = max = 1;
    if (at_end()) return true;
    const char c = peek();
    if (c == '?' || c == '*' || c == '+') {
      ++i_;
      min = c == '+' ? 1 : 0;
      max = c == '?' ? 1 : kUnbounded;
    } else if (c == '{') {
      size_t j = i_ + 1;
      auto number = [&](uint32_t& v) {
        size_t start = j;
        // RE2 reads "{05}" as literal text (no leading zeros in a count): leave it to RE2.
        if (j + 1 < p_.size() && p_[j] == '0' && std::isdigit(static_cast<unsigned char>(p_[j + 1]))) return false;
        v = 0;
        while (j < p_.size() && std::isdigit(static_cast<unsigned char>(p_[j])) && v <= kMaxRepeat)
          v = v * 10 + static_cast<uint32_t>(p_[j++] - '0');
        return j > start && v <= kMaxRepeat;
      };
      uint32_t n, m;
      if (!number(n)) return false;  // "{" not followed by a count: RE2 may read it literally
      if (j < p_.size() && p_[j] == '}') {
        m = n;
      } else if (j < p_.size() && p_[j] == ',') {
        ++j;
        if (j < p_.size() && p_[j] == '}') {
          m = kUnbounded;
        } else if (!number(m) || m < n) {
          return false;
        }
        if (j >= p_.size() || p_[j] != '}') return false;
      } else {
        return false;
      }
      i_ = j + 1;
      min = n;
      max = m;
    } else {
      return true;
    }
    if (!at_end() && peek() == '?') ++i_;  // lazy
    if (!at_end() && (peek() == '?' || peek() == '*' || peek() == '+' || peek() == '{')) return false;  // stacked
    return true;
  }

  bool atom(Chars& out) {
    const char c = p_[i_++];
    if (c == '[') return bracket(out);
    if (c == '\\') return !at_end() && escape_class(p_[i_++], out);
    if (is_meta(c) || static_cast<unsigned char>(c) >= 128) return false;
    out.set(static_cast<size_t>(c));
    return true;
  }

  bool at_end() const { return i_ >= p_.size(); }
  char peek() const { return p_[i_]; }
  size_t i_ = 0;

 private:
  std::string_view p_;
};

}  // namespace

std::optional<SimplePattern> SimplePattern::compile(std::string_view pattern) {
  // Anchors at the ends mean nothing more for a whole-value match.
  if (!pattern.empty() && pattern.front() == '^') pattern.remove_prefix(1);
  if (!pattern.empty() && pattern.back() == '$' &&
      (pattern.size() < 2 || pattern[pattern.size() - 2] != '\\'))
    pattern.remove_suffix(1);
  SimplePattern sp;
  Parser p(pattern);
  std::vector<Chars> classes;
  while (!p.at_end()) {
    Segment s;
    Chars chars;
    if (!p.atom(chars) || !p.quantifier(s.min, s.max)) return std::nullopt;
    for (size_t c = 0; c < chars.size(); ++c) s.in[c] = chars[c];
    sp.segments_.push_back(s);
    classes.push_back(chars);
  }
  // Greedy matching is exact only if a variable part cannot take a byte that
  // any later part could have used.
  Chars later;
  for (size_t i = sp.segments_.size(); i-- > 0;) {
    if (sp.segments_[i].min != sp.segments_[i].max && (classes[i] & later).any()) return std::nullopt;
    later |= classes[i];
  }
  return sp;
}

bool SimplePattern::full_match(std::string_view v) const {
  size_t at = 0;
  for (const Segment& s : segments_) {
    uint32_t n = 0;
    while (n < s.max && at < v.size() && s.in[static_cast<unsigned char>(v[at])]) {
      ++at;
      ++n;
    }
    if (n < s.min) return false;
  }
  return at == v.size();
}

}  // namespace sluice::policy
