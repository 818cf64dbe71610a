#include "llm/sse_scanner.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::llm {
namespace {

struct Ev {
  std::string raw, data, name;
  bool done = false;
  bool operator==(const Ev& o) const = default;  // compares raw too
};

struct Fields {
  std::string data, name;
  bool done = false;
  bool operator==(const Fields&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Fields& f) {
  return os << "{name=" << f.name << " data=" << f.data << " done=" << f.done << "}";
}

struct Scanned {
  std::vector<Ev> events;
  std::string pending;
  Status status;

  std::vector<Fields> fields() const {
    std::vector<Fields> out;
    for (const Ev& e : events) out.push_back({e.data, e.name, e.done});
    return out;
  }
  std::string all_raw() const {
    std::string s;
    for (const Ev& e : events) s += e.raw;
    return s + pending;
  }
};

// Feeds `pieces` in order and collects everything the scanner reports.
Scanned scan(const std::vector<std::string_view>& pieces, size_t max = size_t{1} << 20) {
  SseScanner scanner(max);
  Scanned run;
  for (std::string_view p : pieces) {
    // Copy each piece so a view that outlived its feed would be caught by ASan.
    std::string copy(p);
    run.status = scanner.feed(copy, [&](const SseEvent& e) {
      run.events.push_back({std::string(e.raw), std::string(e.data), std::string(e.name), e.done});
    });
    if (!run.status) return run;
  }
  run.pending = std::string(scanner.take_pending());
  return run;
}

// A stream with every line ending, comments, names, multi-line data, a BOM,
// stray blank lines, [DONE] and an unterminated tail.
const std::string kStream =
    "\xEF\xBB\xBF"
    ": keep-alive\n\n"
    "event: message_start\ndata: {\"a\":1}\n\n"
    "data: line1\r\ndata: line2\r\n\r\n"
    "data:nospace\rdata:  two\r\r"
    "id: 7\nretry: 100\ndata\n\n"
    "\n"
    ": c\ndata: x\n: c2\ndata: y\n\n"
    "event:ping\n\r\n"
    "data: [DONE]\n\n"
    "data: tail";

const std::vector<Ev> kExpected = {
    {"\xEF\xBB\xBF: keep-alive\n\n", "", ""},
    {"event: message_start\ndata: {\"a\":1}\n\n", "{\"a\":1}", "message_start"},
    {"data: line1\r\ndata: line2\r\n\r\n", "line1\nline2", ""},
    {"data:nospace\rdata:  two\r\r", "nospace\n two", ""},
    {"id: 7\nretry: 100\ndata\n\n", "", ""},
    {"\n", "", ""},
    {": c\ndata: x\n: c2\ndata: y\n\n", "x\ny", ""},
    {"event:ping\n\r\n", "", "ping"},
    {"data: [DONE]\n\n", "[DONE]", "", true},
};

TEST(SseScannerTest, WholeStream) {
  Scanned run = scan({kStream});
  ASSERT_TRUE(run.status.is_ok());
  EXPECT_EQ(run.events, kExpected);
  EXPECT_EQ(run.pending, "data: tail");
  EXPECT_EQ(run.all_raw(), kStream);
}

// A split that puts the CR and LF of one CRLF in different feeds moves that LF
// from the end of one event's raw to the start of the next one's.
bool splits_crlf(const std::string& s, size_t at) { return at > 0 && at < s.size() && s[at - 1] == '\r' && s[at] == '\n'; }

TEST(SseScannerTest, EveryTwoWaySplit) {
  const Scanned whole = scan({kStream});
  const std::string_view s = kStream;
  for (size_t i = 0; i <= s.size(); ++i) {
    Scanned run = scan({s.substr(0, i), s.substr(i)});
    ASSERT_TRUE(run.status.is_ok()) << i;
    ASSERT_EQ(run.fields(), whole.fields()) << "split at " << i;
    ASSERT_EQ(run.all_raw(), kStream) << i;
    if (!splits_crlf(kStream, i)) {
      ASSERT_EQ(run.events, whole.events) << i;
    }
  }
}

TEST(SseScannerTest, EveryThreeWaySplit) {
  const Scanned whole = scan({kStream});
  const std::string_view s = kStream;
  for (size_t i = 0; i <= s.size(); ++i) {
    for (size_t j = i; j <= s.size(); ++j) {
      Scanned run = scan({s.substr(0, i), s.substr(i, j - i), s.substr(j)});
      ASSERT_TRUE(run.status.is_ok());
      ASSERT_EQ(run.fields(), whole.fields()) << "split at " << i << "," << j;
      ASSERT_EQ(run.all_raw(), kStream) << i << "," << j;
      if (!splits_crlf(kStream, i) && !splits_crlf(kStream, j)) {
        ASSERT_EQ(run.events, whole.events) << i << "," << j;
      }
    }
  }
}

TEST(SseScannerTest, ByteByByteAndEmptyFeeds) {
  std::vector<std::string_view> pieces;
  const std::string_view s = kStream;
  for (size_t i = 0; i < s.size(); ++i) {
    pieces.push_back(s.substr(i, 1));
    pieces.push_back({});
  }
  Scanned run = scan(pieces);
  ASSERT_TRUE(run.status.is_ok());
  EXPECT_EQ(run.fields(), scan({kStream}).fields());
  EXPECT_EQ(run.all_raw(), kStream);
}

TEST(SseScannerTest, OpenAiStream) {
  const std::string s =
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
      "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\n"
      "data: [DONE]\n\n";
  Scanned run = scan({s});
  ASSERT_EQ(run.events.size(), 3u);
  EXPECT_EQ(run.events[0].data, "{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}");
  EXPECT_FALSE(run.events[1].done);
  EXPECT_TRUE(run.events[2].done);
  EXPECT_EQ(run.pending, "");
}

TEST(SseScannerTest, FieldRules) {
  struct Case {
    std::string in;
    std::string data, name;
  };
  const std::vector<Case> cases = {
      {"data:x\n\n", "x", ""},
      {"data:  x\n\n", " x", ""},         // only one space is removed
      {"data: x \n\n", "x ", ""},         // trailing space kept
      {"data\n\n", "", ""},               // no colon: empty value
      {"data:\ndata:\n\n", "\n", ""},     // two empty data lines
      {"data: a:b\n\n", "a:b", ""},       // only the first colon splits
      {"DATA: x\n\n", "", ""},            // field names are case-sensitive
      {"event: a\nevent: b\n\n", "", "b"},  // the last event field wins
      {"event\n\n", "", ""},
      {"dat: x\ndata : y\n\n", "", ""},   // not "data"
      {":data: x\n\n", "", ""},           // a comment
      {"\xEF\xBB\xBF" "data: bom\n\n", "bom", ""},
      {"\xEF\xBB" "data: x\n\n", "", ""},  // a partial BOM is text: field "\xEF\xBB" "data"
      {"\xEF\xBB\xBF\xEF\xBB\xBF" "data: x\n\n", "", ""},  // only one BOM is skipped
  };
  for (const Case& c : cases) {
    Scanned run = scan({c.in});
    ASSERT_EQ(run.events.size(), 1u) << c.in;
    EXPECT_EQ(run.events[0].data, c.data) << c.in;
    EXPECT_EQ(run.events[0].name, c.name) << c.in;
    EXPECT_EQ(run.events[0].raw, c.in);
  }
}

TEST(SseScannerTest, BomOnlyAtStreamStart) {
  Scanned run = scan({"data: a\n\n\xEF\xBB\xBF" "data: b\n\n"});
  ASSERT_EQ(run.events.size(), 2u);
  EXPECT_EQ(run.events[1].data, "");  // the second BOM is part of the field name
}

TEST(SseScannerTest, BomThenBlankLineIsAnEmptyEvent) {
  Scanned run = scan({"\xEF\xBB\xBF\ndata: a\n\n"});
  ASSERT_EQ(run.events.size(), 2u);
  EXPECT_EQ(run.events[0].raw, "\xEF\xBB\xBF\n");
  EXPECT_EQ(run.events[1].data, "a");
}

TEST(SseScannerTest, CrAtFeedEndThenLf) {
  // The CR ends the event immediately; the LF is not another empty line.
  SseScanner scanner;
  std::vector<std::string> raws;
  auto collect = [&](const SseEvent& e) { raws.emplace_back(e.raw); };
  ASSERT_TRUE(scanner.feed("data: a\r\n\r", collect).is_ok());
  ASSERT_EQ(raws.size(), 1u);
  EXPECT_EQ(raws[0], "data: a\r\n\r");
  ASSERT_TRUE(scanner.feed("\ndata: b\r\n\r\n", collect).is_ok());
  ASSERT_EQ(raws.size(), 2u);
  EXPECT_EQ(raws[1], "\ndata: b\r\n\r\n");
  EXPECT_EQ(scanner.pending_bytes(), 0u);
}

TEST(SseScannerTest, ZeroCopyWhenInsideOneFeed) {
  const std::string s = "data: one\n\ndata: two\n\n";
  SseScanner scanner;
  int n = 0;
  ASSERT_TRUE(scanner
                  .feed(s,
                        [&](const SseEvent& e) {
                          ++n;
                          EXPECT_GE(e.raw.data(), s.data());
                          EXPECT_LE(e.raw.data() + e.raw.size(), s.data() + s.size());
                          EXPECT_GE(e.data.data(), s.data());
                          EXPECT_LE(e.data.data() + e.data.size(), s.data() + s.size());
                        })
                  .is_ok());
  EXPECT_EQ(n, 2);
}

TEST(SseScannerTest, PendingBytes) {
  SseScanner scanner;
  auto ignore = [](const SseEvent&) {};
  ASSERT_TRUE(scanner.feed("data: a\n\ndata: par", ignore).is_ok());
  EXPECT_EQ(scanner.pending_bytes(), 9u);
  ASSERT_TRUE(scanner.feed("tial\n", ignore).is_ok());
  EXPECT_EQ(scanner.pending_bytes(), 14u);
  std::string data;
  ASSERT_TRUE(scanner.feed("\n", [&](const SseEvent& e) { data = e.data; }).is_ok());
  EXPECT_EQ(data, "partial");
  EXPECT_EQ(scanner.pending_bytes(), 0u);
  EXPECT_EQ(scanner.take_pending(), "");
}

TEST(SseScannerTest, TakePendingAtEndOfStream) {
  SseScanner scanner;
  auto ignore = [](const SseEvent&) {};
  ASSERT_TRUE(scanner.feed("data: a\n\ndata: no blank line\n", ignore).is_ok());
  EXPECT_EQ(scanner.take_pending(), "data: no blank line\n");
  EXPECT_EQ(scanner.pending_bytes(), 0u);
}

TEST(SseScannerTest, MaxEventBytes) {
  // 108 bytes, of which 107 count: the blank line's line ending does not.
  const std::string big = "data: " + std::string(100, 'x') + "\n\n";
  {
    Scanned run = scan({big}, 107);
    EXPECT_TRUE(run.status.is_ok());
    EXPECT_EQ(run.events.size(), 1u);
  }
  {
    Scanned run = scan({"data: ok\n\n" + big}, 106);
    EXPECT_EQ(run.status.code(), Errc::kBodyTooLarge);
    EXPECT_EQ(run.events.size(), 1u);  // the event before the big one came out
  }
  {
    // Split: the pending event grows past the limit before it is complete.
    Scanned run = scan({big.substr(0, 60), big.substr(60, 40), big.substr(100)}, 90);
    EXPECT_EQ(run.status.code(), Errc::kBodyTooLarge);
    EXPECT_TRUE(run.events.empty());
  }
  {
    // The same limit whether or not the final CRLF is split between feeds.
    const std::string crlf = "data: 12345\r\n\r\n";  // 15 bytes, 13 count
    EXPECT_TRUE(scan({crlf}, 13).status.is_ok());
    EXPECT_TRUE(scan({crlf.substr(0, 14), crlf.substr(14)}, 13).status.is_ok());
    EXPECT_EQ(scan({crlf}, 12).status.code(), Errc::kBodyTooLarge);
    EXPECT_EQ(scan({crlf.substr(0, 14), crlf.substr(14)}, 12).status.code(), Errc::kBodyTooLarge);
  }
  {
    // Bytes that may still be a BOM do not count while the BOM is split.
    EXPECT_TRUE(scan({"\xEF", "\xBB", "\xBF "}, 1).status.is_ok());
    EXPECT_EQ(scan({"\xEF", "\xBB", "x"}, 2).status.code(), Errc::kBodyTooLarge);
  }
  {
    // An unterminated event is limited too.
    SseScanner scanner(50);
    Status s = scanner.feed(std::string(51, 'x'), [](const SseEvent&) {});
    EXPECT_EQ(s.code(), Errc::kBodyTooLarge);
    // The scanner stays failed.
    EXPECT_EQ(scanner.feed("\n\n", [](const SseEvent&) { ADD_FAILURE(); }).code(), Errc::kBodyTooLarge);
  }
}

TEST(SseScannerTest, GarbageIsStillSplitIntoLines) {
  std::string junk;
  for (int i = 0; i < 256; ++i) junk += static_cast<char>(i);
  junk += junk;
  Scanned whole = scan({junk});
  EXPECT_EQ(whole.all_raw(), junk);
  for (size_t i = 0; i <= junk.size(); i += 7) {
    Scanned run = scan({std::string_view(junk).substr(0, i), std::string_view(junk).substr(i)});
    EXPECT_EQ(run.fields(), whole.fields());
    EXPECT_EQ(run.all_raw(), junk);
  }
}

}  // namespace
}  // namespace sluice::llm
