#pragma once

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace sluice::net {

namespace asio = boost::asio;

// One event loop per thread. Worker state is owned by the worker; other threads
// talk to it only by posting to its io_context (DESIGN.md section 4).
class Worker {
 public:
  explicit Worker(int index) : index_(index), ctx_(1) {}
  int index() const { return index_; }
  asio::io_context& ctx() { return ctx_; }

 private:
  friend class WorkerPool;
  int index_;
  asio::io_context ctx_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

class WorkerPool {
 public:
  explicit WorkerPool(unsigned n);  // n == 0: one per core
  ~WorkerPool();

  size_t size() const { return workers_.size(); }
  Worker& at(size_t i) { return *workers_[i]; }

  void start();
  // Lets each loop finish once it has no more work; join() waits.
  void release();
  void stop();  // hard stop
  void join();

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace sluice::net
