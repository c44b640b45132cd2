// Robustness benchmark: a family of hard registration cases (docs/robustness.md), each registered
// by geodesic shooting and by velocity-field LDDMM with the DEFAULT RegistrationOptions (no
// tuning: what `diffeoflow register` / `compare` do without flags).
//
// The cases (registration/shapes.h draws them, seeded):
//  - dipy's own circle → C example images (Debian python3-dipy ships them; the case is skipped
//    when they are missing);
//  - C rings against the solid disc (moving = disc, fixed = C): the reference 256² circle → C
//    pair (25 px ring, 40 px mouth, sharp), its 64² × 4 mm copy (the unit-test pair), and rings of
//    other thickness, mouth width, edge and rotation;
//  - a C ring translated by a quarter of the field of view;
//  - 2-D slices of the Colin27 brain (ch2bet, Debian package mricron-data) against their image
//    under a random diffeomorphism with max displacement 10 % of the field of view;
//  - intensity ranges other than [0, 1] ([100, 1100], and a CT-like [−1000, 3000]);
//  - with 3d=1, the brain resampled to 64³ under such a diffeomorphism.
//
// Prints one JSON object a line per case and method (case, method, status, ssd_reduction,
// min_jacobian, max_jacobian, folded_voxels, wall_seconds, iterations, velocity_norm_spread, …),
// then a markdown table. A run that throws (NumericalError: a fold, a NaN) is reported with
// status "failed" and its message, and the benchmark goes on with the next.
//
//   bench_robustness [case=NAME[,NAME…]] [methods=shooting,lddmm] [out=DIR] [register=1]
//                    [3d=0] [threads=1] [allow_folds=0] [list=1] [affine=none|rigid|affine]
//                    [brain=/usr/share/mricron/templates/ch2bet.nii.gz]
//                    [dipy_data=/usr/lib/python3/dist-packages/dipy/data/files]
//                    [tolerance=T] [window=W] [coarse_factor=F] [iterations=N]
//
// out=DIR writes every case as DIR/NAME/{fixed,moving}.{nii.gz,npy} and DIR/cases.json (what
// bench/robustness_dipy.py reads), and the results as DIR/results.jsonl and DIR/table.md.
// register=0 only writes the cases. allow_folds=1 sets max_folded_fraction = 1 — the only
// option changed, a health check after the run — to see the figures of a folded map; it is not
// the default behaviour and the table marks such rows "folded". tolerance, window, coarse_factor
// and iterations set the stopping rule (RegistrationOptions::relative_decrease,
// tolerance_window, coarse_tolerance_factor, iterations) for sweeps of it; without them the
// defaults run.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench_args.h"
#include "registration/image_io.h"
#include "registration/image_ops.h"
#include "registration/register.h"
#include "registration/shapes.h"
#include "solvers/errors.h"

namespace {

using namespace diffeoflow::registration;
using diffeoflow::NumericalError;
using nlohmann::json;

struct CasePair {
  Image moving;
  Image fixed;
  json info = json::object();  // what made the pair (the synthetic warp's figures), for the rows
};

struct Case {
  std::string name;
  std::string kind;  // "shape" (binary-like: dipy SSD) or "anatomy" (dipy CC)
  std::string description;
  std::function<CasePair()> make;
  bool three_d = false;
};

// The brain volume, read once.
const Image& Brain(const std::string& path) {
  static std::map<std::string, Image> cache;
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, ReadImage(path)).first;
  return it->second;
}

// A 2-D slice of a volume: axis 2 (axial: x, y at z = index), 1 (coronal: x, z at y = index),
// 0 (sagittal: y, z at x = index). Spacing kept; origin and direction dropped (unit direction).
Image Slice(const Image& volume, int axis, int index) {
  const Grid& g = volume.grid;
  const int a = axis == 0 ? 1 : 0, b = axis == 2 ? 1 : 2;  // the two axes kept
  Image out;
  out.grid.dim = 2;
  out.grid.size = {g.size[a], g.size[b], 1};
  out.grid.spacing_mm = {g.spacing_mm[a], g.spacing_mm[b], 1.0};
  out.data.resize(out.grid.voxels());
  for (int j = 0; j < g.size[b]; ++j) {
    for (int i = 0; i < g.size[a]; ++i) {
      std::array<int, 3> p{0, 0, 0};
      p[axis] = index;
      p[a] = i;
      p[b] = j;
      out.data[out.grid.index(i, j)] = volume.data[g.index(p[0], p[1], p[2])];
    }
  }
  return out;
}

// fixed = the image, moving = the image under a random diffeomorphism (10 % of the field of view).
CasePair Warped(const Image& image, std::uint64_t seed) {
  RandomDiffeomorphismOptions warp;
  warp.max_displacement_fraction = 0.10;
  warp.seed = seed;
  const RandomDiffeomorphism psi = MakeRandomDiffeomorphism(image.grid, warp);
  const Image moving = WarpImage(image, PositionFromDisplacement(psi.displacement_mm));
  const json info{{"warp_max_displacement_mm", psi.max_displacement_mm},
                  {"warp_min_jacobian", psi.min_jacobian},
                  {"warp_max_jacobian", psi.max_jacobian}};
  return CasePair{moving, image, info};
}

CRingOptions Ring(int size, double outer, double thickness, double mouth, double rotation_deg,
                  double edge_px) {
  CRingOptions o;
  o.size = size;
  o.outer_radius_px = outer;
  o.thickness_px = thickness;
  o.mouth_width_px = mouth;
  o.rotation_deg = rotation_deg;
  o.edge_width_px = edge_px;
  return o;
}

CasePair RingPair(const CRingOptions& o) {
  const ShapePair p = DiscToCRingPair(o);
  return CasePair{p.moving, p.fixed};
}

// dipy's own circle → C example pair (dipy/data/files/circle.npy → C.npy, 256², binary): the
// pair of the registration literature as dipy ships it, drawn by nobody here.
CasePair DipyCirclePair(const std::string& folder) {
  const std::filesystem::path dir(folder);
  return CasePair{ReadImage((dir / "circle.npy").string()), ReadImage((dir / "C.npy").string())};
}

std::vector<Case> AllCases(const std::string& brain, const std::string& dipy_data) {
  std::vector<Case> cases;
  cases.push_back({"dipy_circle_c", "shape",
                   "dipy's example pair: circle.npy -> C.npy (256^2, binary; python3-dipy's "
                   "data files)",
                   [dipy_data] { return DipyCirclePair(dipy_data); }});
  auto ring = [&](const std::string& name, const std::string& description, CRingOptions o) {
    cases.push_back({name, "shape", description, [o] { return RingPair(o); }});
  };
  ring("c_reference",
       "the reference circle -> C: 256^2, ring 25 px, mouth 40 px onto a 104 px hollow, sharp",
       ReferenceCRing());
  ring("c_small_hard", "the reference geometry at 64^2 x 4 mm (the unit-test pair)",
       SmallHardCRing());
  ring("c_thin_sharp", "256^2, thin ring 12 px, mouth 24 px onto a 130 px hollow, sharp",
       Ring(256, 77, 12, 24, 0, 0));
  ring("c_thick_smooth", "256^2, thick ring 40 px, mouth 40 px, smooth edge (tanh, 2 px)",
       Ring(256, 77, 40, 40, 0, 2.0));
  ring("c_narrow_mouth", "256^2, ring 25 px, mouth 16 px onto a 104 px hollow, sharp",
       Ring(256, 77, 25, 16, 0, 0));
  ring("c_wide_mouth_smooth", "256^2, ring 25 px, mouth 80 px, smooth edge (tanh, 2 px)",
       Ring(256, 77, 25, 80, 0, 2.0));
  ring("c_rotated_135", "256^2, ring 18 px, mouth 30 px facing 135 deg, sharp",
       Ring(256, 77, 18, 30, 135, 0));
  ring("c_thin_rotated_smooth", "128^2, ring 8 px, mouth 12 px facing 250 deg, smooth (1 px)",
       Ring(128, 40, 8, 12, 250, 1.0));
  cases.push_back({"translate_quarter", "shape",
                   "256^2 C ring (R 50, 20 px, mouth 30, smooth) translated by 64 px = FOV/4 "
                   "along x",
                   [] {
                     const Image c = CRingImage(Ring(256, 50, 20, 30, 90, 1.5));
                     const ShapePair p = TranslatedPair(c, {64.0, 0.0, 0.0}, 0.0);
                     return CasePair{p.moving, p.fixed};
                   }});
  cases.push_back({"translate_quarter_diagonal", "shape",
                   "256^2 disc (R 40, sharp) translated by 64 px = FOV/4 along the diagonal",
                   [] {
                     CRingOptions o = Ring(256, 40, 40, 0, 0, 0);
                     const Image disc = CRingDiscImage(o);
                     const double s = 64.0 / std::sqrt(2.0);
                     const ShapePair p = TranslatedPair(disc, {s, s, 0.0}, 0.0);
                     return CasePair{p.moving, p.fixed};
                   }});
  cases.push_back({"brain_axial_warp10", "anatomy",
                   "ch2bet axial slice z = 90 (181 x 217, 1 mm) under a random diffeomorphism, "
                   "max |u| = 10 % FOV (seed 1)",
                   [brain] { return Warped(Slice(Brain(brain), 2, 90), 1); }});
  cases.push_back({"brain_coronal_warp10", "anatomy",
                   "ch2bet coronal slice y = 120 (181 x 181, 1 mm) under a random "
                   "diffeomorphism, max |u| = 10 % FOV (seed 2)",
                   [brain] { return Warped(Slice(Brain(brain), 1, 120), 2); }});
  cases.push_back({"brain_sagittal_warp10", "anatomy",
                   "ch2bet sagittal slice x = 70 (217 x 181, 1 mm) under a random "
                   "diffeomorphism, max |u| = 10 % FOV (seed 3)",
                   [brain] { return Warped(Slice(Brain(brain), 0, 70), 3); }});
  cases.push_back({"intensity_c_100_1100", "shape",
                   "128^2 disc -> C ring (R 40, 12 px, mouth 16, smooth 1 px), intensities in "
                   "[100, 1100]",
                   [] {
                     CRingOptions o = Ring(128, 40, 12, 16, 45, 1.0);
                     o.low = 100.0;
                     o.high = 1100.0;
                     return RingPair(o);
                   }});
  cases.push_back({"intensity_brain_ct", "anatomy",
                   "ch2bet axial slice z = 70 under a random diffeomorphism (seed 4); moving "
                   "in [-1000, 3000] (CT-like), fixed in [100, 1100]",
                   [brain] {
                     const CasePair p = Warped(Slice(Brain(brain), 2, 70), 4);
                     return CasePair{RescaleIntensity(p.moving, -1000.0, 3000.0),
                                     RescaleIntensity(p.fixed, 100.0, 1100.0), p.info};
                   }});
  cases.push_back({"brain3d_64", "anatomy",
                   "ch2bet resampled to 64^3 under a random diffeomorphism, max |u| = 10 % FOV "
                   "(seed 5)",
                   [brain] {
                     const Image& volume = Brain(brain);
                     const Image small = Resample(volume, ResizedGrid(volume.grid, {64, 64, 64}));
                     return Warped(small, 5);
                   },
                   true});
  return cases;
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

json GridJson(const Grid& g) {
  json j;
  j["dim"] = g.dim;
  j["size"] = std::vector<int>(g.size.begin(), g.size.begin() + g.dim);
  j["spacing_mm"] = std::vector<double>(g.spacing_mm.begin(), g.spacing_mm.begin() + g.dim);
  return j;
}

// The fold count and min det in Register's fold message ("det Dphi <= 0 at N of M voxels …
// min det Dphi X"), when it has that form.
void ParseFoldMessage(const std::string& message, json& row) {
  std::smatch m;
  if (std::regex_search(message, m, std::regex(R"(at (\d+) of \d+ voxels)"))) {
    row["folded_voxels"] = std::stol(m[1].str());
  }
  if (std::regex_search(message, m, std::regex(R"(min det Dphi ([-+0-9.eE]+))"))) {
    row["min_jacobian"] = std::stod(m[1].str());
  }
}

std::string Cell(const json& row, const char* key, const char* format, double scale = 1.0) {
  if (!row.contains(key) || row[key].is_null()) return "–";
  char buffer[64];
  if (row[key].is_number_integer()) {
    std::snprintf(buffer, sizeof(buffer), "%ld", row[key].get<long>());
  } else {
    std::snprintf(buffer, sizeof(buffer), format, scale * row[key].get<double>());
  }
  return buffer;
}

std::string Table(const std::vector<json>& rows) {
  std::ostringstream t;
  t << "| case | method | status | SSD reduction | min det Dφ | max det Dφ | folded voxels | "
       "time (s) | iterations | ‖v_t‖ spread |\n";
  t << "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const json& r : rows) {
    t << "| " << r["case"].get<std::string>() << " | " << r["method"].get<std::string>() << " | "
      << r["status"].get<std::string>() << " | " << Cell(r, "ssd_reduction", "%.1f %%", 100.0)
      << " | " << Cell(r, "min_jacobian", "%.3g") << " | " << Cell(r, "max_jacobian", "%.3g")
      << " | " << Cell(r, "folded_voxels", "%g") << " | " << Cell(r, "wall_seconds", "%.1f")
      << " | " << Cell(r, "iterations", "%g") << " | "
      << Cell(r, "velocity_norm_spread", "%.1f %%", 100.0) << " |\n";
  }
  return t.str();
}

void WriteCase(const std::filesystem::path& dir, const Case& c, const CasePair& pair) {
  std::filesystem::create_directories(dir / c.name);
  WriteImage((dir / c.name / "fixed.nii.gz").string(), pair.fixed, ElementType::kFloat32);
  WriteImage((dir / c.name / "moving.nii.gz").string(), pair.moving, ElementType::kFloat32);
  WriteImage((dir / c.name / "fixed.npy").string(), pair.fixed, ElementType::kFloat64);
  WriteImage((dir / c.name / "moving.npy").string(), pair.moving, ElementType::kFloat64);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args;
  if (!diffeoflow::bench::ParseKeyValues(argc, argv, "bench_robustness", args)) return 2;
  static const std::set<std::string> known{"case",  "methods", "out",         "register", "3d",
                                           "threads", "brain", "allow_folds", "list", "affine",
                                           "tolerance", "window", "coarse_factor", "iterations",
                                           "dipy_data"};
  for (const auto& [key, value] : args) {
    if (!known.count(key)) {
      std::cerr << "bench_robustness: unknown argument '" << key << "'\n";
      return 2;
    }
  }
  auto flag = [&](const std::string& key, bool fallback) {
    return args.count(key) ? args[key] != "0" : fallback;
  };
  const std::string brain =
      args.count("brain") ? args["brain"] : "/usr/share/mricron/templates/ch2bet.nii.gz";
  const std::string dipy_data =
      args.count("dipy_data") ? args["dipy_data"]
                              : "/usr/lib/python3/dist-packages/dipy/data/files";
  const std::vector<Case> cases = AllCases(brain, dipy_data);

  if (flag("list", false)) {
    for (const Case& c : cases) {
      std::cout << c.name << (c.three_d ? " (3d=1)" : "") << ": " << c.description << "\n";
    }
    return 0;
  }

  std::set<std::string> chosen;
  if (args.count("case")) {
    for (const std::string& name : Split(args["case"])) {
      bool found = false;
      for (const Case& c : cases) found = found || c.name == name;
      if (!found) {
        std::cerr << "bench_robustness: case=" << name << ": no such case (list=1 lists them)\n";
        return 2;
      }
      chosen.insert(name);
    }
  }
  std::vector<RegistrationMethod> methods;
  try {
    for (const std::string& m : Split(args.count("methods") ? args["methods"] : "shooting,lddmm")) {
      methods.push_back(ParseRegistrationMethod(m, "methods"));
    }
  } catch (const std::exception& e) {
    std::cerr << "bench_robustness: " << e.what() << "\n";
    return 2;
  }
  const bool with_3d = flag("3d", false);
  const bool run = flag("register", true);
  const std::optional<std::filesystem::path> out =
      args.count("out") ? std::optional<std::filesystem::path>(args["out"]) : std::nullopt;

  RegistrationOptions defaults;  // no tuning
  if (args.count("threads")) defaults.metric.threads = std::atoi(args["threads"].c_str());
  if (flag("allow_folds", false)) defaults.max_folded_fraction = 1.0;
  // affine=none|rigid|affine: register's --affine (default: the library's default).
  if (args.count("affine")) defaults.affine.mode = ParseAffineMode(args["affine"], "affine");
  if (args.count("tolerance")) defaults.relative_decrease = std::atof(args["tolerance"].c_str());
  if (args.count("window")) defaults.tolerance_window = std::atoi(args["window"].c_str());
  if (args.count("coarse_factor")) {
    defaults.coarse_tolerance_factor = std::atof(args["coarse_factor"].c_str());
  }
  if (args.count("iterations")) defaults.iterations = std::atoi(args["iterations"].c_str());

  std::vector<json> rows;
  json manifest = json::array();
  std::ofstream results;
  if (out) {
    std::filesystem::create_directories(*out);
    if (run) results.open(*out / "results.jsonl");
  }
  for (const Case& c : cases) {
    if (!chosen.empty() && !chosen.count(c.name)) continue;
    if (chosen.empty() && c.three_d && !with_3d) continue;
    CasePair pair;
    try {
      pair = c.make();
    } catch (const std::exception& e) {
      // A missing brain or dipy file: report the case, go on.
      for (const RegistrationMethod method : methods) {
        json row{{"case", c.name}, {"method", RegistrationMethodName(method)},
                 {"status", "skipped"}, {"error", e.what()}};
        std::cout << row.dump() << std::endl;
        rows.push_back(row);
      }
      continue;
    }
    if (out) {
      WriteCase(*out, c, pair);
      json entry{{"name", c.name}, {"kind", c.kind}, {"description", c.description}};
      entry.update(GridJson(pair.fixed.grid));
      entry.update(pair.info);
      manifest.push_back(entry);
      // Rewritten after every case, so a run cut short still leaves a readable manifest.
      std::ofstream(*out / "cases.json") << manifest.dump(2) << "\n";
    }
    if (!run) continue;
    for (const RegistrationMethod method : methods) {
      RegistrationOptions options = defaults;
      options.method = method;
      json row{{"case", c.name}, {"method", RegistrationMethodName(method)}};
      row.update(GridJson(pair.fixed.grid));
      row.update(pair.info);
      const auto start = std::chrono::steady_clock::now();
      try {
        const RegistrationResult r = Register(pair.moving, pair.fixed, options);
        const long folded = (r.jacobian.data.array() <= 0.0).count();
        row["status"] = folded > 0 ? "folded" : "ok";
        row["ssd_initial"] = r.ssd_initial;
        row["ssd_final"] = r.ssd_final;
        row["ssd_reduction"] = r.ssd_reduction();
        row["min_jacobian"] = r.min_jacobian;
        row["max_jacobian"] = r.max_jacobian;
        row["folded_voxels"] = folded;
        row["wall_seconds"] = r.wall_seconds;
        row["iterations"] = r.iterations;
        row["velocity_norm_spread"] = r.velocity_norm_spread();
        row["kinetic_energy"] = r.kinetic_energy;
        row["termination"] = r.termination;
      } catch (const NumericalError& e) {
        row["status"] = "failed";
        row["error"] = e.what();
        ParseFoldMessage(e.what(), row);
        row["wall_seconds"] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      } catch (const std::exception& e) {
        row["status"] = "error";
        row["error"] = e.what();
      }
      std::cout << row.dump() << std::endl;
      if (results.is_open()) results << row.dump() << std::endl;
      rows.push_back(row);
    }
  }
  if (run && !rows.empty()) {
    const std::string table = Table(rows);
    std::cout << "\n" << table;
    if (out) std::ofstream(*out / "table.md") << table;
  }
  return 0;
}
