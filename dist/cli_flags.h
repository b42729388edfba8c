// The command-line flags every manifest-run program shares (ask_clip --batch, omnipipe run):
// declared once here, copied into ManifestRunOptions by apply(). Header-only; needs CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "dist/manifest_run.h"

namespace omni::dist {

struct ManifestRunFlags {
  bool resume = false, coordinator_only = false, quiet = false;
  int in_flight = 2;

  // Adds --resume, --in-flight, --coordinator-only and --quiet to `app`; `scope` starts each
  // help line (e.g. "--batch" or "manifest graphs").
  void add_to(CLI::App& app, const std::string& scope) {
    app.add_flag("--resume", resume,
                 scope +
                     ": keep the finished lines of an earlier, interrupted run's output "
                     "file and run the rest");
    app.add_option("--in-flight", in_flight,
                   scope + ": manifest lines one process holds at once (running + queued)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--coordinator-only", coordinator_only,
                 scope + " under mpirun: rank 0 only hands out lines and writes records");
    app.add_flag("--quiet", quiet, scope + ": no progress or summary on stderr");
  }

  void apply(ManifestRunOptions& o) const {
    o.resume = resume;
    o.in_flight = in_flight;
    o.coordinator_works = !coordinator_only;
    o.quiet = quiet;
  }
};

}  // namespace omni::dist
