// server.processes: N — a small supervisor process that owns the listening
// sockets and runs N worker processes (each a whole gateway with its worker
// threads), as an Erlang/OTP supervisor does: one_for_one restarts.
//
//  - Sockets: processes x workers SO_REUSEPORT sockets per listener, bound
//    once here; worker process i is handed its share (net/handover.h). Its
//    sockets outlive it: connections the kernel queued on them while it was
//    down are served by its replacement, not refused.
//  - Limits are split: each worker process enforces its share of every
//    concurrency limit, key/team rate limit and budget (as each thread does
//    in one process) and of the memory limit; limits.state_file is kept per
//    process (FILE.<slot>), so a restarted worker process restores its spend.
//    (Redis shares limits exactly: limits.backend: redis.)
//  - A worker process that dies is restarted at once (measured and logged);
//    one that keeps dying is restarted with a growing back-off (crash loop).
//    Only its own connections are affected.
//  - Signals: SIGHUP and POST /admin/reload validate the file here first and
//    then reload every worker; a bad file reaches none. SIGUSR1 is forwarded.
//    SIGTERM drains every worker, then exits. SIGUSR2 and POST /admin/upgrade
//    upgrade the whole tree: the new supervisor takes the sockets, starts its
//    workers, and the old workers drain.
//  - Admin: /healthz, /readyz (ready while a worker process serves),
//    /metrics (every worker's, scraped and merged: obs/metrics_merge.h),
//    /admin/workers (each slot's pid, state, restarts, last restart time).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/settings.h"
#include "net/handover.h"

namespace sluice::control {

struct SupervisorOptions {
  std::string executable;         // what worker processes (and a successor) run
  std::vector<std::string> argv;  // this process's own arguments
  std::string port_file;          // {"api":..,"admin":..,"tls":..,"pid":..} once workers serve
  std::function<Result<gateway::Settings>()> load_config;  // validates a reload
  net::HandedSockets handed;      // a successor supervisor: the sockets it took over
};

// Runs the supervisor until it is stopped; returns the exit code.
int run_supervisor(std::shared_ptr<const gateway::Settings> settings, SupervisorOptions options);

// The hidden option a worker process is started with:
// "--worker-process SLOT,PROCESSES,THREADS,DIR".
inline constexpr const char* kWorkerProcessFlag = "--worker-process";

}  // namespace sluice::control
