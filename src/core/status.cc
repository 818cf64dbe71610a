#include "core/status.h"

namespace sluice {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::kOk: return "ok";
    case Errc::kInvalid: return "invalid";
    case Errc::kHeaderTooLarge: return "header_too_large";
    case Errc::kBodyTooLarge: return "body_too_large";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kTimeout: return "timeout";
    case Errc::kClosed: return "closed";
    case Errc::kIo: return "io";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kNotFound: return "not_found";
    case Errc::kCancelled: return "cancelled";
    case Errc::kInternal: return "internal";
  }
  return "unknown";
}

}  // namespace sluice
