// Ctrl-C for programs that run a graph: while a CancelOnSignal lives, SIGINT / SIGTERM cancel the
// graph. The signal handler only writes the signal number to a pipe (async-signal-safe); a watcher
// thread reads it and calls Graph::cancel(), which locks and allocates and so must not run in a
// handler. After the first signal the default action is back, so a second Ctrl-C ends the process.
#pragma once

#include <atomic>
#include <csignal>
#include <initializer_list>
#include <thread>
#include <vector>

namespace omni {

class Graph;

class CancelOnSignal {
 public:
  // Installs the handlers; throws Error if another CancelOnSignal is alive (the handler has one
  // pipe) or the pipe cannot be made.
  explicit CancelOnSignal(Graph& graph, std::initializer_list<int> signals = {SIGINT, SIGTERM});
  ~CancelOnSignal();  // restores the previous handlers and stops the watcher
  CancelOnSignal(const CancelOnSignal&) = delete;
  CancelOnSignal& operator=(const CancelOnSignal&) = delete;

  // The first signal that arrived (e.g. SIGINT), 0 if none. A program exits with 128 + it.
  int received() const { return received_.load(); }

 private:
  void watch(Graph& graph);

  std::vector<int> signals_;
  std::vector<struct sigaction> previous_;
  int pipe_[2] = {-1, -1};
  std::atomic<int> received_{0};
  std::thread watcher_;
};

}  // namespace omni
