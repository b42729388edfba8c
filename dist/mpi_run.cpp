// Manifest runs across MPI ranks (see manifest_run.h). Only each process's main thread calls MPI
// (MPI_THREAD_FUNNELED): the graph runs on its own threads and talks to the main thread's loop
// through the ProcessFeed. Every send is non-blocking with its buffer kept until it completes, so
// two ranks sending to each other can never deadlock.
#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <list>
#include <thread>

#include "core/error.h"
#include "dist/coordinator.h"

namespace omni::dist {

namespace {

using Clock = std::chrono::steady_clock;

enum Tag : int {
  kRequest = 1,  // worker -> 0: one more line, please (empty)
  kItem = 2,     // 0 -> worker: int64 index + line text; index -1: no more lines
  kDone = 3,     // worker -> 0: int64 index + the line's records (JSON Lines)
  kBye = 4,      // worker -> 0: {"wait_s", "wall_s"}, after its last kDone
};

std::string pack(int64_t index, const std::string& text) {
  std::string b(sizeof(int64_t), '\0');
  std::memcpy(b.data(), &index, sizeof(int64_t));
  return b + text;
}
int64_t unpack(const std::string& b, std::string* text) {
  int64_t index = -1;
  if (b.size() < sizeof(int64_t)) throw RunError("MPI: short message");
  std::memcpy(&index, b.data(), sizeof(int64_t));
  if (text) *text = b.substr(sizeof(int64_t));
  return index;
}

// Non-blocking sends whose buffers live until MPI is done with them.
class Sender {
 public:
  void send(int dest, int tag, std::string data) {
    sends_.emplace_back();
    auto& s = sends_.back();
    s.data = std::move(data);
    MPI_Isend(s.data.data(), int(s.data.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD, &s.req);
  }
  void progress() {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int flag = 0;
      MPI_Test(&it->req, &flag, MPI_STATUS_IGNORE);
      it = flag ? sends_.erase(it) : std::next(it);
    }
  }
  void drain() {
    for (auto& s : sends_) MPI_Wait(&s.req, MPI_STATUS_IGNORE);
    sends_.clear();
  }

 private:
  struct Send {
    std::string data;
    MPI_Request req = MPI_REQUEST_NULL;
  };
  std::list<Send> sends_;
};

// Receives one message if one is waiting (from `source`, any tag).
bool poll(int source, int* from, int* tag, std::string* data) {
  int flag = 0;
  MPI_Status st;
  MPI_Iprobe(source, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
  if (!flag) return false;
  int n = 0;
  MPI_Get_count(&st, MPI_BYTE, &n);
  data->assign(size_t(n), '\0');
  MPI_Recv(data->data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  *from = st.MPI_SOURCE;
  *tag = st.MPI_TAG;
  return true;
}

// Waits a little longer each idle round (20 us .. 500 us), so an idle loop costs little CPU while
// a busy one answers at once; the graph's threads wake it early (a line taken, records ready).
class Backoff {
 public:
  void busy() { us_ = 0; }
  void idle() {
    us_ = us_ == 0 ? 20 : std::min(us_ * 2, 500);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::microseconds(us_), [this] { return woken_; });
    woken_ = false;
  }
  void wake() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      woken_ = true;
    }
    cv_.notify_one();
  }

 private:
  int us_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
};

// The graph on its own thread; remembers how it ended.
class GraphThread {
 public:
  explicit GraphThread(const std::function<void()>& run_graph) {
    t0_ = Clock::now();
    thread_ = std::thread([this, &run_graph] {
      try {
        run_graph();
      } catch (const std::exception& e) {
        error_ = e.what();
      } catch (...) {
        error_ = "unknown exception";
      }
      wall_s_ = std::chrono::duration<double>(Clock::now() - t0_).count();
      finished_ = true;
    });
  }
  ~GraphThread() {
    if (thread_.joinable()) thread_.join();
  }
  bool finished() const { return finished_; }
  void join() { thread_.join(); }
  const std::string& error() const { return error_; }
  double wall_s() const { return wall_s_; }

 private:
  std::thread thread_;
  std::atomic<bool> finished_{false};
  std::string error_;
  double wall_s_ = 0;
  Clock::time_point t0_;
};

[[noreturn]] void abort_job(const ManifestRunOptions& o, int rank, const std::string& what) {
  std::fprintf(stderr, "%s: rank %d: error: %s\n%s: aborting the MPI job (rerun with --resume)\n",
               o.program.c_str(), rank, what.c_str(), o.program.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

ManifestRunSummary run_coordinator(const ManifestRunOptions& o, int size,
                                   const std::function<void()>& run_graph) {
  std::unique_ptr<Coordinator> coord;
  try {
    coord = std::make_unique<Coordinator>(o, size);
  } catch (const std::exception& e) {
    abort_job(o, 0, e.what());
  }
  if (!o.quiet)
    std::fprintf(stderr, "%s: %d ranks, %lld lines to run, %d in flight per rank%s\n",
                 o.program.c_str(), size, static_cast<long long>(coord->to_run()),
                 std::max(1, o.in_flight), o.coordinator_works ? "" : ", rank 0 coordinates only");
  auto feed = std::make_shared<ProcessFeed>(
      o.in_flight,
      [&coord](int64_t index, const std::vector<nlohmann::ordered_json>& r) {
        coord->complete(0, index, r);
      },
      [&coord](ManifestLine& line) { return coord->take(0, line); });
  std::unique_ptr<GraphThread> graph;
  if (o.coordinator_works) {
    install_item_feed(feed);
    graph = std::make_unique<GraphThread>(run_graph);
  }
  Sender sender;
  Backoff backoff;
  int byes = 0;
  bool local_done = !graph;
  try {
    while (!local_done || byes < size - 1) {
      bool any = false;
      int from = 0, tag = 0;
      std::string data;
      while (poll(MPI_ANY_SOURCE, &from, &tag, &data)) {
        any = true;
        if (tag == kRequest) {
          ManifestLine line;
          sender.send(from, kItem,
                      coord->take(from, line) ? pack(line.index, line.text) : pack(-1, ""));
        } else if (tag == kDone) {
          std::string text;
          const int64_t index = unpack(data, &text);
          coord->complete_text(from, index, text);
        } else if (tag == kBye) {
          const auto j = nlohmann::json::parse(data);
          coord->rank_finished(from, j.at("wait_s").get<double>(), j.at("wall_s").get<double>());
          ++byes;
        }
      }
      sender.progress();
      if (!local_done && graph->finished()) {
        graph->join();
        install_item_feed(nullptr);
        if (!graph->error().empty()) abort_job(o, 0, graph->error());
        feed->graph_ended();
        coord->rank_finished(0, feed->wait_s(), graph->wall_s());
        local_done = true;
        any = true;
      }
      if (any)
        backoff.busy();
      else
        backoff.idle();
    }
    sender.drain();
    return coord->finish();
  } catch (const std::exception& e) {
    abort_job(o, 0, e.what());
  }
}

ManifestRunSummary run_worker(const ManifestRunOptions& o, int rank,
                              const std::function<void()>& run_graph) {
  std::mutex out_mu;
  std::vector<std::string> outbox;  // packed kDone messages from the graph threads
  Backoff backoff;
  auto feed = std::make_shared<ProcessFeed>(
      o.in_flight, [&](int64_t index, const std::vector<nlohmann::ordered_json>& records) {
        std::string text;
        for (const auto& r : records)
          text += r.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
        {
          std::lock_guard<std::mutex> lock(out_mu);
          outbox.push_back(pack(index, text));
        }
        backoff.wake();
      });
  feed->on_take = [&backoff] { backoff.wake(); };
  install_item_feed(feed);
  GraphThread graph(run_graph);
  Sender sender;
  auto flush_outbox = [&] {
    std::vector<std::string> msgs;
    {
      std::lock_guard<std::mutex> lock(out_mu);
      msgs.swap(outbox);
    }
    for (auto& m : msgs) sender.send(0, kDone, std::move(m));
    return !msgs.empty();
  };
  try {
    for (;;) {
      bool any = false;
      for (int n = feed->wanted(); n > 0; --n, any = true) sender.send(0, kRequest, "");
      any |= flush_outbox();
      int from = 0, tag = 0;
      std::string data;
      while (poll(0, &from, &tag, &data)) {
        any = true;
        std::string text;
        const int64_t index = unpack(data, &text);
        if (index < 0)
          feed->exhausted();
        else
          feed->push({index, std::move(text)});
      }
      sender.progress();
      if (graph.finished()) {
        graph.join();
        install_item_feed(nullptr);
        if (!graph.error().empty()) abort_job(o, rank, graph.error());
        feed->graph_ended();
        flush_outbox();
        // Answers to requests still out are "no more lines" (nothing is handed out after the
        // first one): receive them so no message is left behind at MPI_Finalize.
        while (feed->asked() > 0) {
          if (poll(0, &from, &tag, &data)) {
            if (unpack(data, nullptr) >= 0) throw RunError("a line came after the graph ended");
            feed->exhausted();
          } else {
            backoff.idle();
          }
        }
        nlohmann::json bye = {{"wait_s", feed->wait_s()}, {"wall_s", graph.wall_s()}};
        sender.send(0, kBye, bye.dump());
        sender.drain();
        break;
      }
      if (any)
        backoff.busy();
      else
        backoff.idle();
    }
  } catch (const std::exception& e) {
    abort_job(o, rank, e.what());
  }
  ManifestRunSummary s;
  s.coordinator = false;
  return s;
}

}  // namespace

ManifestRunSummary run_manifest_mpi(const ManifestRunOptions& o,
                                    const std::function<void()>& run_graph) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const std::string gpu = assign_gpu_by_local_rank();
  if (!gpu.empty() && !o.quiet)
    std::fprintf(stderr, "%s: rank %d uses GPU %s (CUDA_VISIBLE_DEVICES)\n", o.program.c_str(),
                 rank, gpu.c_str());
  ManifestRunSummary s =
      rank == 0 ? run_coordinator(o, size, run_graph) : run_worker(o, rank, run_graph);
  MPI_Finalize();
  return s;
}

}  // namespace omni::dist
