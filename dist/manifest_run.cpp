// Manifest runs in one process, and the pieces the MPI run shares (see manifest_run.h).
#include "dist/manifest_run.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "dist/coordinator.h"

namespace omni::dist {

#ifdef OMNI_WITH_MPI
ManifestRunSummary run_manifest_mpi(const ManifestRunOptions& o,
                                    const std::function<void()>& run_graph);
bool built_with_mpi() { return true; }
#else
bool built_with_mpi() { return false; }
#endif

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int env_int(std::initializer_list<const char*> names, int fallback) {
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) return std::atoi(v);
  return fallback;
}

}  // namespace

int launched_world_size() {
  return env_int({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}, 1);
}
int launched_rank() {
  return env_int({"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"}, 0);
}
int launched_local_rank() {
  return env_int(
      {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MPICH_LOCALRANKID", "SLURM_LOCALID"}, 0);
}

std::string assign_gpu_by_local_rank(int gpus) {
  if (launched_world_size() <= 1) return "";
  // The GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else all the driver lists.
  std::vector<std::string> ids;
  if (const char* v = std::getenv("CUDA_VISIBLE_DEVICES"); v) {
    std::stringstream ss(v);
    for (std::string id; std::getline(ss, id, ',');)
      if (!id.empty()) ids.push_back(id);
  } else {
    if (gpus < 0) {
      gpus = 0;
      std::error_code ec;
      for (auto it = std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec);
           !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++gpus;
    }
    for (int i = 0; i < gpus; ++i) ids.push_back(std::to_string(i));
  }
  if (ids.size() <= 1) return "";  // one GPU (shared by the ranks) or none: nothing to choose
  const std::string mine = ids[size_t(launched_local_rank()) % ids.size()];
  ::setenv("CUDA_VISIBLE_DEVICES", mine.c_str(), 1);
  return mine;
}

std::optional<ManifestGraph> manifest_of(const GraphSpec& spec) {
  const GraphSpec::NodeSpec *source = nullptr, *writer = nullptr;
  for (const auto& n : spec.nodes) {
    const GraphSpec::NodeSpec** slot = n.type == "ManifestSource" ? &source
                                       : n.type == "RecordWriter" ? &writer
                                                                  : nullptr;
    if (!slot) continue;
    if (*slot)
      throw ConfigError((n.where.empty() ? "" : n.where + ": ") + "graph '" + spec.name +
                        "' has more than one " + n.type + " ('" + (*slot)->name + "' and '" +
                        n.name + "'); a manifest run has one of each");
    *slot = &n;
  }
  if (!source) return std::nullopt;
  auto path_of = [](const GraphSpec::NodeSpec& n, const std::string& fallback) {
    auto it = n.params.find("path");
    if (it == n.params.end()) return fallback;
    if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
    throw ConfigError("node '" + n.name + "': path must be a string");
  };
  ManifestGraph m;
  m.manifest = path_of(*source, "");
  if (m.manifest.empty())
    throw ConfigError("ManifestSource '" + source->name + "': path (the manifest) is not set");
  if (writer) m.out = path_of(*writer, "-");
  return m;
}

// ---- summary ----

nlohmann::ordered_json ManifestRunSummary::to_json(bool with_line_numbers) const {
  nlohmann::ordered_json j;
  j["lines"] = lines;
  j["skipped"] = skipped;
  j["ran"] = ran;
  j["records"] = records;
  j["errors"] = errors;
  j["seconds"] = seconds;
  j["lines_per_s"] = seconds > 0 ? double(ran) / seconds : 0.0;
  j["ranks"] = ranks;
  j["per_rank"] = nlohmann::ordered_json::array();
  for (const auto& r : per_rank) {
    nlohmann::ordered_json x;
    x["rank"] = r.rank;
    x["lines"] = r.lines;
    x["errors"] = r.errors;
    x["wait_s"] = r.wait_s;
    x["wall_s"] = r.wall_s;
    if (with_line_numbers) x["line_numbers"] = r.line_numbers;
    j["per_rank"].push_back(std::move(x));
  }
  if (skipped > 0 || resume.dropped_records > 0 || resume.truncated_tail) {
    j["resume"] = {{"kept_lines", resume.kept_lines},
                   {"dropped_records", resume.dropped_records},
                   {"unreadable_lines", resume.unreadable_lines},
                   {"truncated_tail", resume.truncated_tail}};
  }
  return j;
}

// ---- Coordinator ----

Coordinator::Coordinator(const ManifestRunOptions& o, int ranks) : o_(o) {
  lines_ = read_manifest_lines(o.manifest);
  std::vector<int64_t> order;
  order.reserve(lines_.size());
  for (const auto& l : lines_) order.push_back(l.index);
  file_ = std::make_unique<RecordFile>(o.out, std::move(order), o.resume, o.expected);
  for (size_t i = 0; i < lines_.size(); ++i)
    if (!file_->finished().count(lines_[i].index)) pending_.push_back(i);
  s_.ranks = ranks;
  s_.lines = int64_t(lines_.size());
  s_.skipped = int64_t(lines_.size() - pending_.size());
  s_.resume = file_->resume_report();
  s_.per_rank.resize(size_t(ranks));
  for (int r = 0; r < ranks; ++r) s_.per_rank[size_t(r)].rank = r;
  if (o.resume && !o.quiet) {
    const auto& rr = s_.resume;
    std::fprintf(stderr,
                 "%s: resuming '%s': %lld of %lld lines finished earlier, %lld records of "
                 "unfinished lines dropped%s%s; %lld lines to run\n",
                 o.program.c_str(), o.out.c_str(), static_cast<long long>(s_.skipped),
                 static_cast<long long>(s_.lines), static_cast<long long>(rr.dropped_records),
                 rr.truncated_tail ? ", a truncated last line dropped" : "",
                 rr.unreadable_lines > 0 ? ", unreadable lines dropped" : "",
                 static_cast<long long>(pending_.size()));
  }
  t0_ = last_print_ = Clock::now();
}

bool Coordinator::take(int rank, ManifestLine& line) {
  std::lock_guard<std::mutex> lock(mu_);
  (void)rank;
  if (pending_.empty()) return false;
  line = lines_[pending_.front()];
  pending_.pop_front();
  handed_.insert(line.index);
  return true;
}

void Coordinator::complete(int rank, int64_t index,
                           const std::vector<nlohmann::ordered_json>& records) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!handed_.erase(index))
    throw RunError("rank " + std::to_string(rank) + " finished line " + std::to_string(index + 1) +
                   ", which was not handed to it");
  file_->append(index, records);
  RankSummary& r = s_.per_rank.at(size_t(rank));
  ++r.lines;
  r.line_numbers.push_back(index + 1);
  ++s_.ran;
  for (const auto& rec : records) {
    ++r.records;
    ++s_.records;
    if (rec.contains("error")) {
      ++r.errors;
      ++s_.errors;
    }
    if (o_.on_record) o_.on_record(rec);
  }
  progress_locked(false);
}

void Coordinator::complete_text(int rank, int64_t index, const std::string& text) {
  std::vector<nlohmann::ordered_json> records;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);)
    if (!l.empty()) records.push_back(nlohmann::ordered_json::parse(l));
  complete(rank, index, records);
}

void Coordinator::rank_finished(int rank, double wait_s, double wall_s) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.per_rank.at(size_t(rank)).wait_s = wait_s;
  s_.per_rank.at(size_t(rank)).wall_s = wall_s;
}

void Coordinator::progress_locked(bool force) {
  if (o_.quiet) return;
  const int64_t total = s_.lines - s_.skipped, done = s_.ran;
  if (total <= 0) return;
  const int64_t pct = done * 100 / total;
  const double since = std::chrono::duration<double>(Clock::now() - last_print_).count();
  if (!force && pct < next_pct_ && since < 15.0 && done != total) return;
  while (next_pct_ <= pct) next_pct_ += 10;
  last_print_ = Clock::now();
  const double s = seconds_since(t0_);
  const double rate = s > 0 ? double(done) / s : 0.0;
  std::string ranks;
  if (s_.ranks > 1) {
    ranks = " | lines per rank:";
    for (const auto& r : s_.per_rank) ranks += " " + std::to_string(r.lines);
  }
  std::fprintf(stderr, "%s: %lld/%lld lines (%lld%%), %lld errors, %.1f lines/s, ETA %.0f s%s\n",
               o_.program.c_str(), static_cast<long long>(done), static_cast<long long>(total),
               static_cast<long long>(pct), static_cast<long long>(s_.errors), rate,
               rate > 0 ? double(total - done) / rate : 0.0, ranks.c_str());
  std::fflush(stderr);
}

ManifestRunSummary Coordinator::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  // Nothing should be left; if a rank ended without a line's records, the line still gets one.
  const std::set<int64_t> left = handed_;
  for (size_t pos : pending_) handed_.insert(lines_[pos].index);
  pending_.clear();
  lock.unlock();
  for (int64_t index : std::set<int64_t>(handed_))
    complete(0, index,
             {error_record(index, left.count(index)
                                      ? "no record: the rank running this line ended without one"
                                      : "not run: every rank ended before this line")});
  lock.lock();
  file_->finish();
  s_.seconds = seconds_since(t0_);
  return s_;
}

// ---- ProcessFeed ----

ProcessFeed::ProcessFeed(int in_flight, Deliver deliver, std::function<bool(ManifestLine&)> fetch)
    : limit_(std::max(1, in_flight)), deliver_(std::move(deliver)), fetch_(std::move(fetch)) {}

bool ProcessFeed::next(ManifestItem& item, const std::function<bool()>& stop) {
  ManifestLine line;
  {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (stop && stop()) return false;
      if (int(in_graph_.size()) < limit_) {
        if (!inbox_.empty()) {
          line = std::move(inbox_.front());
          inbox_.pop_front();
          break;
        }
        if (fetch_) {
          if (!fetch_(line)) {
            exhausted_ = true;
            return false;
          }
          break;
        }
        if (exhausted_) return false;
        // Starved: every line this process holds is done and the next has not come yet.
        const auto t0 = Clock::now();
        cv_.wait_for(lock, std::chrono::milliseconds(50));
        wait_s_ += seconds_since(t0);
        continue;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    in_graph_.insert(line.index);
    ++lines_;
  }
  if (on_take) on_take();
  item = parse_manifest_item(line.index, std::move(line.text));
  return true;
}

void ProcessFeed::drop_locked(int64_t index, const std::string& why) {
  deliver_(index, {error_record(index, why)});
  in_graph_.erase(index);
}

void ProcessFeed::done(int64_t index, std::vector<nlohmann::ordered_json> records) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!in_graph_.count(index))
    throw RunError("RecordWriter: records for line " + std::to_string(index + 1) +
                   ", which this process is not running (one packet per manifest line, at the "
                   "line's timestamp, is expected)");
  while (*in_graph_.begin() < index)
    drop_locked(*in_graph_.begin(),
                "no record: the graph dropped this line (a later line's record came first)");
  deliver_(index, records);
  in_graph_.erase(index);
  cv_.notify_all();
}

int ProcessFeed::wanted() {
  std::lock_guard<std::mutex> lock(mu_);
  if (exhausted_) return 0;
  const int n = std::max(0, limit_ - int(in_graph_.size() + inbox_.size()) - asked_);
  asked_ += n;
  return n;
}

void ProcessFeed::push(ManifestLine line) {
  std::lock_guard<std::mutex> lock(mu_);
  --asked_;
  inbox_.push_back(std::move(line));
  cv_.notify_all();
}

void ProcessFeed::exhausted() {
  std::lock_guard<std::mutex> lock(mu_);
  --asked_;
  exhausted_ = true;
  cv_.notify_all();
}

int ProcessFeed::asked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return asked_;
}

void ProcessFeed::graph_ended() {
  std::lock_guard<std::mutex> lock(mu_);
  while (!in_graph_.empty())
    drop_locked(*in_graph_.begin(), "no record: the graph ended without finishing this line");
  for (const auto& l : inbox_)
    deliver_(l.index, {error_record(l.index, "not run: the graph ended before this line")});
  inbox_.clear();
}

double ProcessFeed::wait_s() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wait_s_;
}
int64_t ProcessFeed::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

// ---- the single-process run ----

ManifestRunSummary run_manifest(const ManifestRunOptions& o,
                                const std::function<void()>& run_graph) {
#ifdef OMNI_WITH_MPI
  if (launched_world_size() > 1) return run_manifest_mpi(o, run_graph);
#else
  if (launched_world_size() > 1 && launched_rank() > 0) {
    // Launched by mpirun, but this build has no MPI: let rank 0 do all the work alone.
    std::fprintf(stderr,
                 "%s: rank %d: built without MPI (OMNI_WITH_MPI=OFF); rank 0 runs every line\n",
                 o.program.c_str(), launched_rank());
    ManifestRunSummary s;
    s.coordinator = false;
    return s;
  }
#endif
  Coordinator coord(o, 1);
  auto feed = std::make_shared<ProcessFeed>(
      o.in_flight,
      [&coord](int64_t index, const std::vector<nlohmann::ordered_json>& r) {
        coord.complete(0, index, r);
      },
      [&coord](ManifestLine& line) { return coord.take(0, line); });
  install_item_feed(feed);
  const auto t0 = Clock::now();
  try {
    run_graph();
  } catch (...) {
    install_item_feed(nullptr);
    throw;
  }
  install_item_feed(nullptr);
  feed->graph_ended();
  coord.rank_finished(0, feed->wait_s(), seconds_since(t0));
  return coord.finish();
}

}  // namespace omni::dist
