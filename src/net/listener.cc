#include "net/listener.h"

#include <sys/socket.h>

#include <cstring>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>

#include <boost/asio/ip/v6_only.hpp>
#include <string>

namespace sluice::net {

Result<tcp::endpoint> parse_listen_address(std::string_view addr) {
  auto bad = [&](std::string_view why) {
    return Status(Errc::kInvalid, "bad listen address '" + std::string(addr) + "': " + std::string(why));
  };
  std::string_view host, port;
  if (!addr.empty() && addr.front() == '[') {
    auto close = addr.find(']');
    if (close == std::string_view::npos || close + 1 >= addr.size() || addr[close + 1] != ':')
      return bad("expected [v6]:port");
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    auto colon = addr.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port");
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535)
    return bad("port must be 0-65535");
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code bec;
  auto ip = asio::ip::make_address(std::string(host), bec);
  if (bec) return bad("host must be an IP address");
  return tcp::endpoint(ip, static_cast<uint16_t>(p));
}

Result<tcp::acceptor> open_listener(asio::io_context& ctx, const tcp::endpoint& ep, bool reuse_port,
                                    int backlog) {
  tcp::acceptor acc(ctx);
  boost::system::error_code ec;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && reuse_port) {
    int one = 1;
    if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec && ep.address().is_v6()) acc.set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(backlog, ec);
  if (ec) {
    return Status(Errc::kIo, "cannot listen on " + ep.address().to_string() + ":" +
                                 std::to_string(ep.port()) + ": " + ec.message());
  }
  return acc;
}

Status check_port_free(const tcp::endpoint& ep) {
  // A bind without SO_REUSEPORT fails while any socket, SO_REUSEPORT or not,
  // listens on the address; the probe is closed before the real listeners bind.
  asio::io_context ctx;
  tcp::acceptor probe(ctx);
  boost::system::error_code ec;
  probe.open(ep.protocol(), ec);
  if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) probe.set_option(asio::ip::v6_only(true), ec);
  if (!ec) probe.bind(ep, ec);
  if (ec == boost::system::errc::address_in_use)
    return Status(Errc::kIo, "cannot listen on " + ep.address().to_string() + ":" + std::to_string(ep.port()) +
                                 ": address already in use (is another sluice running?)");
  if (ec)
    return Status(Errc::kIo, "cannot listen on " + ep.address().to_string() + ":" + std::to_string(ep.port()) +
                                 ": " + ec.message());
  return Status::ok();
}

std::optional<tcp::endpoint> bound_endpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) return std::nullopt;
  tcp::endpoint ep;
  ep.resize(len);
  std::memcpy(ep.data(), &ss, len);
  return ep;
}

void tune_socket(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
}

}  // namespace sluice::net
