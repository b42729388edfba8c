// CancelOnSignal: self-pipe signal handling (see interrupt.h).
#include "core/interrupt.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/graph.h"

namespace omni {
namespace {

// The write end of the active CancelOnSignal's pipe; -1 when none. A lock-free atomic int is safe
// to read in a signal handler.
std::atomic<int> g_write_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void omni_cancel_signal_handler(int sig) {
  const int saved = errno;
  const int fd = g_write_fd.load();
  if (fd >= 0) {
    const unsigned char b = static_cast<unsigned char>(sig);
    [[maybe_unused]] const ssize_t n = ::write(fd, &b, 1);  // non-blocking; a full pipe is fine
  }
  errno = saved;
}

}  // namespace

CancelOnSignal::CancelOnSignal(Graph& graph, std::initializer_list<int> signals)
    : signals_(signals) {
  if (::pipe2(pipe_, O_CLOEXEC) != 0)
    throw Error(std::string("CancelOnSignal: pipe2 failed: ") + std::strerror(errno));
  ::fcntl(pipe_[1], F_SETFL, ::fcntl(pipe_[1], F_GETFL) | O_NONBLOCK);
  int expected = -1;
  if (!g_write_fd.compare_exchange_strong(expected, pipe_[1])) {
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    throw Error("CancelOnSignal: another one is already active");
  }
  watcher_ = std::thread([this, &graph] { watch(graph); });
  struct sigaction sa {};
  sa.sa_handler = omni_cancel_signal_handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second signal gets the default action (ends the process)
  previous_.resize(signals_.size());
  for (size_t i = 0; i < signals_.size(); ++i) ::sigaction(signals_[i], &sa, &previous_[i]);
}

CancelOnSignal::~CancelOnSignal() {
  for (size_t i = 0; i < signals_.size(); ++i) ::sigaction(signals_[i], &previous_[i], nullptr);
  g_write_fd.store(-1);
  const unsigned char stop = 0;
  while (::write(pipe_[1], &stop, 1) < 0 && errno == EINTR) {
  }
  watcher_.join();
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

void CancelOnSignal::watch(Graph& graph) {
  while (true) {
    unsigned char b = 0;
    const ssize_t n = ::read(pipe_[0], &b, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || b == 0) return;  // stop request (or a broken pipe)
    int none = 0;
    received_.compare_exchange_strong(none, static_cast<int>(b));
    graph.cancel();
  }
}

}  // namespace omni
