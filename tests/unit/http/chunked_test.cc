// Chunked decoder: framing, extensions, trailers, limits, and that every way
// of splitting the input decodes to the same payload.
#include "http/h1/chunked.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::http::h1 {
namespace {

struct Decoded {
  std::string payload;
  size_t consumed = 0;  // total input consumed
  bool done = false;
  bool error = false;
  std::string error_msg;
};

// Feeds `in` in pieces of at most `piece` bytes (0 = all at once), the way a
// connection would: unconsumed bytes stay in front of the next read.
Decoded decode_in_pieces(std::string_view in, size_t piece, size_t max_trailer = 16 * 1024) {
  ChunkedDecoder dec(max_trailer);
  Decoded out;
  std::string pending;
  size_t fed = 0;
  while (true) {
    if (piece == 0) {
      pending.append(in.substr(fed));
      fed = in.size();
    } else if (fed < in.size()) {
      size_t n = std::min(piece, in.size() - fed);
      pending.append(in.substr(fed, n));
      fed += n;
    }
    std::string_view view = pending;
    for (;;) {
      ChunkedDecoder::Step s = dec.decode(view);
      EXPECT_LE(s.consumed, view.size());
      if (!s.data.empty()) {
        EXPECT_GE(s.data.data(), view.data());
        EXPECT_LE(s.data.data() + s.data.size(), view.data() + s.consumed);
      }
      out.payload.append(s.data);
      view.remove_prefix(s.consumed);
      out.consumed += s.consumed;
      if (s.error) {
        out.error = true;
        out.error_msg = std::string(s.error_msg);
        return out;
      }
      if (s.done) {
        out.done = true;
        EXPECT_TRUE(dec.done());
        return out;
      }
      if (s.consumed == 0 && s.data.empty()) break;
    }
    pending.erase(0, pending.size() - view.size());
    if (fed == in.size()) return out;  // needs more input than there is
  }
}

TEST(Chunked, SimpleBodyWholeAndByteByByte) {
  const std::string in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  for (size_t piece : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
    Decoded d = decode_in_pieces(in, piece);
    EXPECT_TRUE(d.done) << piece;
    EXPECT_FALSE(d.error) << d.error_msg;
    EXPECT_EQ(d.payload, "hello world") << piece;
    EXPECT_EQ(d.consumed, in.size()) << piece;
  }
}

TEST(Chunked, EveryTwoWaySplitGivesSamePayload) {
  const std::string in =
      "a;name=value;x\r\n0123456789\r\n1F\r\nabcdefghijklmnopqrstuvwxyz01234\r\n"
      "1 ; ext\r\nZ\r\n0\r\nX-Trailer: t\r\nY:\r\n\r\n";
  const std::string expect = "0123456789abcdefghijklmnopqrstuvwxyz01234Z";
  for (size_t cut = 0; cut <= in.size(); ++cut) {
    ChunkedDecoder dec;
    std::string payload;
    std::string_view a = std::string_view(in).substr(0, cut);
    bool done = false;
    while (!done) {
      auto s = dec.decode(a);
      ASSERT_FALSE(s.error) << cut << ": " << s.error_msg;
      payload.append(s.data);
      a.remove_prefix(s.consumed);
      done = s.done;
      if (s.consumed == 0 && s.data.empty()) break;
    }
    EXPECT_EQ(done, cut == in.size()) << cut;
    std::string pending = std::string(a) + in.substr(cut);
    std::string_view b = pending;
    while (!done) {
      auto s = dec.decode(b);
      ASSERT_FALSE(s.error) << cut << ": " << s.error_msg;
      ASSERT_FALSE(s.consumed == 0 && s.data.empty() && !s.done) << cut;
      payload.append(s.data);
      b.remove_prefix(s.consumed);
      done = s.done;
    }
    EXPECT_EQ(payload, expect) << cut;
    EXPECT_TRUE(b.empty()) << cut;
  }
}

TEST(Chunked, DataIsASubViewOfTheInput) {
  ChunkedDecoder dec;
  const std::string in = "3\r\nabc\r\n0\r\n\r\n";
  auto s = dec.decode(in);
  EXPECT_EQ(s.data, "abc");
  EXPECT_EQ(s.data.data(), in.data() + 3);
  EXPECT_EQ(s.consumed, 6u);
}

TEST(Chunked, StopsAfterLastChunk) {
  ChunkedDecoder dec;
  const std::string in = "0\r\n\r\nGET / HTTP/1.1\r\n";
  auto s = dec.decode(in);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.consumed, 5u);
  EXPECT_TRUE(dec.done());
  s = dec.decode(std::string_view(in).substr(5));
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.consumed, 0u);
}

TEST(Chunked, NeedsMoreInput) {
  ChunkedDecoder dec;
  auto s = dec.decode("");
  EXPECT_EQ(s.consumed, 0u);
  EXPECT_TRUE(s.data.empty());
  EXPECT_FALSE(s.done);
  EXPECT_FALSE(s.error);
  s = dec.decode("1");  // framing bytes are consumed even without payload
  EXPECT_EQ(s.consumed, 1u);
  EXPECT_TRUE(s.data.empty());
  s = dec.decode("0\r\n");
  EXPECT_EQ(s.consumed, 3u);
  s = dec.decode("abcdefghijklmnop\r\n");
  EXPECT_EQ(s.data, "abcdefghijklmnop");
  EXPECT_FALSE(s.done);
}

TEST(Chunked, SizesAndHexDigits) {
  EXPECT_EQ(decode_in_pieces("A\r\n0123456789\r\n0\r\n\r\n", 0).payload, "0123456789");
  EXPECT_EQ(decode_in_pieces("000000000000000a\r\n0123456789\r\n0\r\n\r\n", 0).payload,
            "0123456789");
  EXPECT_TRUE(decode_in_pieces("0000000000000000\r\n\r\n", 0).done);
  // 16 hex digits is the largest allowed size; it decodes as far as input goes.
  Decoded d = decode_in_pieces("ffffffffffffffff\r\nabc", 0);
  EXPECT_FALSE(d.error);
  EXPECT_EQ(d.payload, "abc");
}

TEST(Chunked, ResetStartsOver) {
  ChunkedDecoder dec;
  EXPECT_TRUE(dec.decode("x").error);
  EXPECT_TRUE(dec.decode("0\r\n\r\n").error);  // errors are sticky
  dec.reset();
  EXPECT_TRUE(dec.decode("0\r\n\r\n").done);
  dec.reset();
  EXPECT_FALSE(dec.done());
  EXPECT_EQ(dec.decode("2\r\nhi\r\n").data, "hi");
}

struct BadChunked {
  const char* what;
  std::string input;
};

TEST(Chunked, MalformedRejectedAtEverySplit) {
  const std::vector<BadChunked> cases = {
      {"empty size", "\r\nabc\r\n0\r\n\r\n"},
      {"non-hex size", "g\r\n"},
      {"negative size", "-1\r\n"},
      {"17 hex digits", "00000000000000001\r\nx\r\n0\r\n\r\n"},
      {"overflowing size", "10000000000000000\r\n"},
      {"bare LF after size", "5\nhello\r\n0\r\n\r\n"},
      {"bare CR after size", "5\rhello\r\n0\r\n\r\n"},
      {"trailing space after size", "5 \r\nhello\r\n0\r\n\r\n"},
      {"junk after size", "5x\r\nhello\r\n0\r\n\r\n"},
      {"CTL in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n"},
      {"bare LF in extension", "5;a\nhello\r\n0\r\n\r\n"},
      {"extension too long", "5;" + std::string(5000, 'e') + "\r\nhello\r\n0\r\n\r\n"},
      {"BWS too long", "5" + std::string(5000, ' ') + ";\r\nhello\r\n0\r\n\r\n"},
      {"data too long", "5\r\nhelloX\r\n0\r\n\r\n"},
      {"bare LF after data", "5\r\nhello\n0\r\n\r\n"},
      {"bare CR after data", "5\r\nhello\rX0\r\n\r\n"},
      {"bare LF final", "0\r\n\n"},
      {"bare CR final", "0\r\n\rX"},
      {"trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n"},
      {"trailer no colon", "0\r\nX\r\n\r\n"},
      {"trailer space before colon", "0\r\nX : a\r\n\r\n"},
      {"trailer bare LF", "0\r\nX: a\n\r\n"},
      {"trailer NUL", std::string("0\r\nX: a\0\r\n\r\n", 12)},
      {"trailer too large", "0\r\nX: " + std::string(17 * 1024, 't') + "\r\n\r\n"},
  };
  for (const BadChunked& c : cases) {
    SCOPED_TRACE(c.what);
    Decoded whole = decode_in_pieces(c.input, 0);
    EXPECT_TRUE(whole.error);
    EXPECT_FALSE(whole.done);
    EXPECT_FALSE(whole.error_msg.empty());
    for (size_t piece : {size_t{1}, size_t{2}, size_t{5}}) {
      Decoded d = decode_in_pieces(c.input, piece);
      EXPECT_TRUE(d.error) << piece;
      EXPECT_EQ(d.error_msg, whole.error_msg) << piece;
      EXPECT_EQ(d.payload, whole.payload) << piece;
    }
  }
}

TEST(Chunked, SpecificErrorMessages) {
  EXPECT_EQ(decode_in_pieces("00000000000000001\r\n", 0).error_msg, "chunk size too long");
  EXPECT_EQ(decode_in_pieces("5\nhello", 0).error_msg, "bare LF");
  EXPECT_EQ(decode_in_pieces("5\r\nhelloX", 0).error_msg, "missing CRLF after chunk data");
  EXPECT_EQ(decode_in_pieces("0\r\nX: " + std::string(100, 't') + "\r\n\r\n", 0, 64).error_msg,
            "trailer section too large");
}

TEST(Chunked, TrailersWithinLimitAreDiscarded) {
  const std::string in = "2\r\nok\r\n0\r\nA: 1\r\nB-2:\tv v\r\n\r\n";
  Decoded d = decode_in_pieces(in, 0, 18);  // "A: 1\r\nB-2:\tv v\r\n\r\n" is 18 bytes
  EXPECT_TRUE(d.done) << d.error_msg;
  EXPECT_EQ(d.payload, "ok");
  d = decode_in_pieces(in, 0, 17);
  EXPECT_TRUE(d.error);
}

TEST(Chunked, ExtensionAtTheLimit) {
  const std::string ok = "1;" + std::string(ChunkedDecoder::kMaxExtensionBytes, 'e') + "\r\nx\r\n0\r\n\r\n";
  Decoded d = decode_in_pieces(ok, 0);
  EXPECT_TRUE(d.done) << d.error_msg;
  EXPECT_EQ(d.payload, "x");
  const std::string bad =
      "1;" + std::string(ChunkedDecoder::kMaxExtensionBytes + 1, 'e') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_TRUE(decode_in_pieces(bad, 0).error);
}

}  // namespace
}  // namespace sluice::http::h1
