#pragma once

#include <optional>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"

namespace sluice::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// "host:port", "[v6]:port", ":port" or "*:port". Host must be an IP literal or
// "localhost". Port 0 asks the kernel for one.
Result<tcp::endpoint> parse_listen_address(std::string_view addr);

// A listening socket with SO_REUSEADDR and, when reuse_port, SO_REUSEPORT so
// each worker can own its own acceptor on the same port.
Result<tcp::acceptor> open_listener(asio::io_context& ctx, const tcp::endpoint& ep, bool reuse_port,
                                    int backlog = 4096);

// Fails with "address already in use" when anything listens on `ep`, also a
// process that uses SO_REUSEPORT (which would otherwise silently share the
// port with us). Call before open_listener() unless taking over on purpose.
Status check_port_free(const tcp::endpoint& ep);

// The IPv4/IPv6 address a socket descriptor is bound to, or nothing (not a
// socket, another family).
std::optional<tcp::endpoint> bound_endpoint(int fd);

// Socket options for an accepted or connected socket (TCP_NODELAY).
void tune_socket(tcp::socket& s);

}  // namespace sluice::net
