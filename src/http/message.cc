#include "http/message.h"

namespace sluice::http {

namespace {

// ASCII-only folding: header names are tokens, and folding obs-text would make
// two different byte strings compare equal.
constexpr unsigned char fold(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }

template <class Headers>
std::string_view find_header(const Headers& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (fold(static_cast<unsigned char>(a[i])) != fold(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view RequestHead::find(std::string_view name) const {
  return find_header(headers, name);
}

std::string_view RequestHead::path() const {
  std::string_view t = target;
  if (!t.empty() && t.front() != '/') {
    // absolute-form "scheme://authority/path?q": the path starts after the
    // authority; an empty path means "/" (RFC 9112 3.2.2).
    size_t scheme_end = t.find("://");
    if (scheme_end == std::string_view::npos) return t;  // asterisk or authority-form
    size_t path_start = t.find_first_of("/?#", scheme_end + 3);
    if (path_start == std::string_view::npos || t[path_start] != '/') return "/";
    t.remove_prefix(path_start);
  }
  size_t q = t.find_first_of("?#");
  return q == std::string_view::npos ? t : t.substr(0, q);
}

std::string_view ResponseHead::find(std::string_view name) const {
  return find_header(headers, name);
}

bool is_hop_by_hop(std::string_view name) {
  // RFC 9110 7.6.1 plus the RFC 2616 list proxies still honour. "Trailer" is
  // included because the codec re-frames bodies and drops trailers.
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    case 17: return iequals(name, "transfer-encoding");
    case 18: return iequals(name, "proxy-authenticate");
    case 19: return iequals(name, "proxy-authorization");
    default: return false;
  }
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}

namespace {
std::string_view moved(std::string_view v, const char* from, const char* to) {
  if (v.empty()) return {};
  return {to + (v.data() - from), v.size()};
}
}  // namespace

void rebase(RequestHead& h, const char* from, const char* to) {
  h.method = moved(h.method, from, to);
  h.target = moved(h.target, from, to);
  for (auto& f : h.headers) {
    f.name = moved(f.name, from, to);
    f.value = moved(f.value, from, to);
  }
}

void rebase(ResponseHead& h, const char* from, const char* to) {
  h.reason = moved(h.reason, from, to);
  for (auto& f : h.headers) {
    f.name = moved(f.name, from, to);
    f.value = moved(f.value, from, to);
  }
}

}  // namespace sluice::http
