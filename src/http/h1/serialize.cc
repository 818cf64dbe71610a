#include "http/h1/serialize.h"

#include "http/message.h"

namespace sluice::http::h1 {

void append_status_line(std::string& out, int status) {
  if (status < 100 || status > 999) status = 500;  // never write a malformed status line
  std::string_view reason = reason_phrase(status);
  char line[16] = {'H', 'T', 'T', 'P', '/', '1', '.', '1', ' ',
                   static_cast<char>('0' + status / 100),
                   static_cast<char>('0' + status / 10 % 10),
                   static_cast<char>('0' + status % 10), ' '};
  out.append(line, 13);
  out.append(reason);
  out.append("\r\n", 2);
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void append_chunk_size(std::string& out, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[2 * sizeof(size_t) + 2];
  char* end = buf + sizeof(buf);
  char* p = end;
  *--p = '\n';
  *--p = '\r';
  do {
    *--p = kHex[n & 0xf];
    n >>= 4;
  } while (n != 0);
  out.append(p, static_cast<size_t>(end - p));
}

}  // namespace sluice::http::h1
