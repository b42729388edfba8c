// Helpers for the core tests: a watchdog that turns a hang into a failure, and small test nodes.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/core_nodes.h"
#include "core/graph.h"

namespace omni::test {

// Aborts the process (failing the test) if not destroyed within `limit`: a hung graph must fail
// the test run instead of blocking CI.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit = std::chrono::seconds(60))
      : thread_([this, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "WATCHDOG: test hung for more than %lld s\n",
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Throws from process() at timestamp `fail_at_us` (param), otherwise forwards.
class FailAt : public Node {
 public:
  static constexpr Input<int64_t> kIn{"in"};
  static constexpr Output<int64_t> kOut{"out"};
  static constexpr Param<int64_t> kFailAt{"fail_at_us", -1, "throw at this timestamp"};
  static constexpr Param<std::string> kWhere{"where", "process", "process | open | close"};
  static Contract contract() {
    return Contract().input(kIn).output(kOut).param(kFailAt).param(kWhere);
  }
  void open(Context& ctx) override {
    at_ = ctx.param(kFailAt);
    where_ = ctx.param(kWhere);
    if (where_ == "open") throw Error("boom in open");
  }
  Flow process(Context& ctx) override {
    if (ctx.timestamp().us() == at_) throw Error("boom at the chosen timestamp");
    ctx.emit(kOut, ctx.input(kIn).packet());
    return Flow::kContinue;
  }
  void close(Context&) override {
    if (where_ == "close") throw Error("boom in close");
  }

 private:
  int64_t at_ = -1;
  std::string where_;
};

// Consumes strings (to provoke port type mismatches).
class StringSink : public Node {
 public:
  static constexpr Input<std::string> kIn{"in"};
  static Contract contract() { return Contract().input(kIn); }
  Flow process(Context&) override { return Flow::kContinue; }
};

// RunOptions shorthand (designated initialisers trip -Wmissing-field-initializers).
inline RunOptions W(int workers, int grace_ms = 2000, std::string trace = {}) {
  RunOptions o;
  o.workers = workers;
  o.deadlock_grace = std::chrono::milliseconds(grace_ms);
  o.trace_path = std::move(trace);
  return o;
}

inline Registry test_registry() {
  Registry r;
  register_core_nodes(r);
  r.add<FailAt>("FailAt");
  r.add<StringSink>("StringSink");
  return r;
}

}  // namespace omni::test
