#include "net/worker_pool.h"

#include <pthread.h>

#include <string>

namespace sluice::net {

WorkerPool::WorkerPool(unsigned n) {
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(static_cast<int>(i)));
}

WorkerPool::~WorkerPool() {
  stop();
  join();
}

void WorkerPool::start() {
  for (auto& w : workers_) {
    w->guard_.emplace(w->ctx_.get_executor());
    w->thread_ = std::thread([wp = w.get()] {
      std::string name = "sluice-w" + std::to_string(wp->index_);
      pthread_setname_np(pthread_self(), name.c_str());
      wp->ctx_.run();
    });
  }
}

void WorkerPool::release() {
  for (auto& w : workers_) w->guard_.reset();
}

void WorkerPool::stop() {
  for (auto& w : workers_) {
    w->guard_.reset();
    w->ctx_.stop();
  }
}

void WorkerPool::join() {
  for (auto& w : workers_)
    if (w->thread_.joinable()) w->thread_.join();
}

}  // namespace sluice::net
