// `diffeoflow atlas`: a population template by geodesic shooting (registration/atlas.h,
// docs/atlas.md). The subjects are shared by the process's Workers (apps/process_workers.h):
// under mpirun each rank registers its own; run alone it is the serial program.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "apps/command.h"
#include "apps/process_workers.h"
#include "apps/registration_flags.h"
#include "registration/atlas.h"
#include "registration/image_io.h"
#include "registration/outputs/atlas_outputs.h"
#include "solvers/atomic_file.h"
#include "solvers/read_file.h"

namespace diffeoflow::app {
namespace {

// The subject files of --list: one path a line (blank lines and lines starting with # skipped);
// relative paths are relative to the list's folder.
std::vector<std::string> ReadSubjectList(const std::string& path) {
  std::istringstream in(ReadWholeFile(path, "--list"));
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::vector<std::string> paths;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.pop_back();
    }
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::filesystem::path entry(line.substr(first));
    paths.push_back(entry.is_absolute() ? entry.string() : (folder / entry).string());
  }
  return paths;
}

struct AtlasFlags {
  RegistrationFlags registration;
  std::vector<std::string> images;
  std::string list;
  std::string template_path;
  int iterations = 4;
  double tolerance = 0.05;
};

CommandRegistration atlas_command{
    "atlas",
    "A population template by geodesic shooting (Frechet mean in the LDDMM metric); under "
    "mpirun the subjects are split over the ranks",
    [](CLI::App& sub, const CommonFlags& common) -> std::function<int()> {
      auto flags = std::make_shared<AtlasFlags>();
      sub.add_option("--images", flags->images,
                     "Subject images (.nii, .nii.gz, .png, .npy): at least 2");
      sub.add_option("--list", flags->list,
                     "A text file naming the subject images, one a line (relative to its folder)");
      sub.add_option("--template", flags->template_path,
                     "Start from this template (its grid is the atlas grid) instead of the "
                     "voxel-wise mean of the subjects");
      sub.add_option("--iterations", flags->iterations,
                     "Template updates K (at most K + 1 rounds of registrations)")
          ->capture_default_str();
      sub.add_option("--atlas-tolerance", flags->tolerance,
                     "Stop when |mean momentum| <= this x the subjects' mean |momentum|")
          ->capture_default_str();
      flags->registration.Add(sub, false, false);
      return [flags, &common]() {
        Workers& workers = ProcessWorkers();
        registration::AtlasOptions options;
        options.registration = flags->registration.Resolve(common);
        options.registration.progress = nullptr;
        options.registration.checkpoint.clear();
        options.iterations = flags->iterations;
        options.tolerance = flags->tolerance;
        options.Validate();
        const bool from_list = !flags->list.empty();
        if (from_list == !flags->images.empty()) {
          throw InputError("atlas: give the subjects with either --images or --list (one of them)");
        }
        const std::string argument = from_list ? "--list" : "--images";
        const std::vector<std::string> paths =
            from_list ? ReadSubjectList(flags->list) : flags->images;
        std::optional<registration::Image> given_template;
        if (!flags->template_path.empty()) {
          given_template = registration::ReadImage(flags->template_path, {true, "--template"});
        }
        const registration::AtlasSubjects subjects = registration::LoadAtlasSubjects(
            paths, argument, given_template ? &*given_template : nullptr, workers);
        const std::string& out = flags->registration.out;
        // Worker 0 prepares --out; the others wait for it (FirstError is a collective).
        std::string local;
        if (workers.rank() == 0) {
          try {
            EnsureOutputDirectory(out, "--out");
          } catch (const InputError& e) {
            local = e.what();
          }
        }
        const std::string prepared = workers.FirstError(local);
        if (!prepared.empty()) throw InputError(prepared);

        const bool show = common.ShowProgress() && workers.rank() == 0;
        if (show) {
          options.progress = [](const registration::AtlasProgress& p) {
            if (p.subject >= 0) {
              std::fprintf(stderr, "\r  round %d/%d  subject %d/%d registered  %.1f s   ",
                           p.round + 1, p.rounds, p.subject + 1, p.subjects, p.elapsed_seconds);
            } else {
              std::fprintf(stderr,
                           "\r  round %d/%d  |mean momentum| %.4g  mean SSD %.4g  %.1f s   \n",
                           p.round + 1, p.rounds, p.mean_momentum_norm, p.mean_ssd,
                           p.elapsed_seconds);
            }
            std::fflush(stderr);
          };
        }
        const registration::AtlasResult result = registration::BuildAtlas(
            subjects, options, given_template ? &*given_template : nullptr, workers);
        local.clear();
        try {
          registration::WriteAtlasSubjectOutputs(out, subjects, result);
          if (workers.rank() == 0) {
            nlohmann::json extra = {{"command", "atlas"},
                                    {"workers", workers.count()},
                                    {"iterations", options.iterations},
                                    {"atlas_tolerance", options.tolerance},
                                    {"start", given_template ? "template" : "voxelwise_mean"}};
            if (given_template) extra["template"] = flags->template_path;
            registration::WriteAtlasSharedOutputs(out, subjects, result, extra);
          }
        } catch (const std::exception& e) {
          local = e.what();
        }
        const std::string written = workers.FirstError(local);
        if (!written.empty()) throw InputError(written);
        if (!common.quiet && workers.rank() == 0) {
          const registration::AtlasRound& last = result.rounds.back();
          std::printf("atlas: %zu subjects, %zu rounds, |mean momentum| %.4g (%.3g of the "
                      "subjects' mean), mean SSD %.4g, %.1f s\nwrote %s/\n",
                      subjects.names.size(), result.rounds.size(), last.mean_momentum_norm,
                      last.mean_subject_momentum_norm > 0
                          ? last.mean_momentum_norm / last.mean_subject_momentum_norm
                          : 0.0,
                      last.mean_ssd, result.wall_seconds, out.c_str());
        }
        return 0;
      };
    }};

}  // namespace
}  // namespace diffeoflow::app
