// Internals of manifest runs (dist/manifest_run.h): the Coordinator (which lines are left, who ran
// what, the output file, progress) and the ProcessFeed (the ItemFeed one process's graph sees).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/manifest.h"
#include "core/record_file.h"
#include "dist/manifest_run.h"

namespace omni::dist {

// Thread-safe: rank 0's graph threads and its MPI loop call it concurrently.
class Coordinator {
 public:
  Coordinator(const ManifestRunOptions& o, int ranks);
  // The next line for `rank`; false when none are left.
  bool take(int rank, ManifestLine& line);
  // A line's records (from `rank`), written whole.
  void complete(int rank, int64_t index, const std::vector<nlohmann::ordered_json>& records);
  // The same, from the JSON Lines text a remote rank sent.
  void complete_text(int rank, int64_t index, const std::string& text);
  void rank_finished(int rank, double wait_s, double wall_s);
  // Error records for lines handed out but never finished, then the file in manifest order.
  ManifestRunSummary finish();
  int64_t to_run() const { return int64_t(pending_.size()); }

 private:
  void progress_locked(bool force);

  ManifestRunOptions o_;
  std::mutex mu_;
  std::vector<ManifestLine> lines_;
  std::deque<size_t> pending_;  // positions in lines_ not handed out yet
  std::set<int64_t> handed_;    // indices handed out, not finished
  std::unique_ptr<RecordFile> file_;
  ManifestRunSummary s_;
  std::chrono::steady_clock::time_point t0_, last_print_;
  int64_t next_pct_ = 10;
};

// The ItemFeed of one process: holds at most `in_flight` lines (given to the graph or queued for
// it). Lines come from `fetch` (rank 0: the Coordinator, directly) or are pushed by the MPI loop,
// which asks for wanted() more; finished groups go to `deliver`. A line the graph dropped (a record
// for a later line arrived first, or the graph ended) gets an error record.
class ProcessFeed : public ItemFeed {
 public:
  using Deliver = std::function<void(int64_t, const std::vector<nlohmann::ordered_json>&)>;
  ProcessFeed(int in_flight, Deliver deliver, std::function<bool(ManifestLine&)> fetch = {});

  bool next(ManifestItem& item, const std::function<bool()>& stop) override;
  void done(int64_t index, std::vector<nlohmann::ordered_json> records) override;

  // MPI side: lines to ask for now (counted as asked), a line arriving, or "no more".
  int wanted();
  void push(ManifestLine line);
  void exhausted();
  int asked() const;
  // After the graph returned: error records for lines it never finished.
  void graph_ended();
  double wait_s() const;
  int64_t lines() const;
  // Called after the graph took a line (the MPI loop may ask for the next one now).
  std::function<void()> on_take;

 private:
  void drop_locked(int64_t index, const std::string& why);

  const int limit_;
  Deliver deliver_;
  std::function<bool(ManifestLine&)> fetch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ManifestLine> inbox_;
  std::set<int64_t> in_graph_;
  int asked_ = 0;
  bool exhausted_ = false;
  double wait_s_ = 0;
  int64_t lines_ = 0;
};

}  // namespace omni::dist
