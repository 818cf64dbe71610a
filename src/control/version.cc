#include "control/version.h"

#include <nghttp2/nghttp2.h>
#include <openssl/crypto.h>

#include <boost/version.hpp>
#include <fmt/format.h>
#include <simdjson.h>

#include "obs/build_info.h"

namespace sluice::control {

namespace {

#define SLUICE_STRINGIZE2(x) #x
#define SLUICE_STRINGIZE(x) SLUICE_STRINGIZE2(x)
constexpr const char* kSimdjsonVersion = SLUICE_STRINGIZE(SIMDJSON_VERSION);  // a bare 3.0.1 token

std::string compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#else
  return "g++ " __VERSION__;
#endif
}

}  // namespace

std::string version_text() {
  const obs::BuildInfo& b = obs::build_info();
  const nghttp2_info* h2 = nghttp2_version(0);
  return fmt::format(
      "sluice {} (commit {}, {} build, {})\n"
      "  OpenSSL  {}\n"
      "  nghttp2  {}\n"
      "  Boost    {}.{}.{} (Asio)\n"
      "  simdjson {}\n"
      "  fmt      {}.{}.{}\n",
      b.version, b.commit, b.mode, compiler(),
      OpenSSL_version(OPENSSL_VERSION), h2 ? h2->version_str : "?", BOOST_VERSION / 100000,
      BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100, kSimdjsonVersion, FMT_VERSION / 10000,
      FMT_VERSION / 100 % 100, FMT_VERSION % 100);
}

}  // namespace sluice::control
