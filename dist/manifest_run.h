// Runs a manifest graph over a JSON Lines manifest, in one process or across the ranks of an MPI
// job (`mpirun -n N PROGRAM ...`; built when OMNI_WITH_MPI). Rank 0 coordinates: it hands out line
// indices one at a time to ranks that ask (dynamic handout: a rank busy with a long clip simply
// asks less often), receives each line's records and writes them crash-safely (core/record_file.h);
// by default it also runs the graph itself. Every rank builds its own graph; the program's
// `run_graph` builds and runs it to completion while the ItemFeed installed here feeds its
// ManifestSource and collects its RecordWriter's records.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/graph.h"
#include "core/record_file.h"

namespace omni::dist {

struct ManifestRunOptions {
  std::string manifest;           // JSON Lines file
  std::string out = "-";          // output file ("-": standard output, in manifest order)
  bool resume = false;            // keep the finished lines of an earlier run's `out`, run the rest
  int in_flight = 2;              // lines one process holds at once (running + queued), >= 1
  bool coordinator_works = true;  // MPI: rank 0 runs the graph too (else it only coordinates)
  bool quiet = false;             // no progress lines on stderr
  std::string program = "omnipipe";  // prefix of progress lines
  RecordFile::Expected expected;     // records of a finished line (default 1); for --resume
  // Called on the coordinator for every record written (e.g. to count correct answers).
  std::function<void(const nlohmann::ordered_json&)> on_record;
};

struct RankSummary {
  int rank = 0;
  int64_t lines = 0, records = 0, errors = 0;
  double wait_s = 0;  // time its ManifestSource waited for a line (idle: no work in hand)
  double wall_s = 0;  // its graph run
  std::vector<int64_t> line_numbers;  // 1-based, in the order it finished them
};

struct ManifestRunSummary {
  bool coordinator = true;  // false on MPI ranks other than 0 (they have nothing to report)
  int ranks = 1;
  int64_t lines = 0;                // manifest lines
  int64_t skipped = 0;              // finished by an earlier run (--resume)
  int64_t ran = 0;                  // run now
  int64_t records = 0, errors = 0;  // written now
  double seconds = 0;
  RecordFile::ResumeReport resume;
  std::vector<RankSummary> per_rank;
  // {"lines", "skipped", "ran", "records", "errors", "seconds", "lines_per_s", "ranks",
  //  "per_rank": [{"rank", "lines", "errors", "wait_s", "wall_s"(, "line_numbers")}], "resume"}
  nlohmann::ordered_json to_json(bool with_line_numbers = false) const;
};

// Runs `run_graph` (build the graph, run it; it throws on failure) with this process's ItemFeed
// installed. Single process unless launched by mpirun with more than one rank (and built with
// MPI). On a rank's failure the error is printed and, under MPI, the job is aborted (MPI's usual
// way); `resume` completes the work afterwards.
ManifestRunSummary run_manifest(const ManifestRunOptions& options,
                                const std::function<void()>& run_graph);

// The MPI launcher's view of this process (environment of Open MPI, MPICH/PMI or Slurm):
// world size (1 when not launched by an MPI launcher), rank, and rank on this machine.
int launched_world_size();
int launched_rank();
int launched_local_rank();

// With several NVIDIA GPUs visible and more than one rank, gives this rank GPU
// (local rank mod GPU count) by narrowing CUDA_VISIBLE_DEVICES (before CUDA starts), so "cuda" /
// "cuda:0" in its graph means its own GPU. `gpus` < 0: count /proc/driver/nvidia/gpus. Returns the
// CUDA_VISIBLE_DEVICES value set, or "" when it left the environment alone.
std::string assign_gpu_by_local_rank(int gpus = -1);

// The manifest and output file of a graph with a ManifestSource (its `path`) and a RecordWriter
// (its `path`, "-" when it has none); nullopt for a graph without a ManifestSource. Throws
// ConfigError when it has more than one of either.
struct ManifestGraph {
  std::string manifest, out = "-";
};
std::optional<ManifestGraph> manifest_of(const GraphSpec& spec);

// True when this build can run across MPI ranks.
bool built_with_mpi();

}  // namespace omni::dist
