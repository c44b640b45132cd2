// The summary figures (PNG, drawn with plot/) of a pairwise registration and of a landmark match.
#pragma once

#include <string>

#include <Eigen/Core>

#include "plot/figure.h"
#include "registration/image.h"
#include "registration/landmark_matching.h"
#include "registration/register.h"

namespace diffeoflow::registration {

// summary.png: moving, fixed, warped, deformed grid, Jacobian map (mid slice in 3-D).
void WriteSummaryFigure(const std::string& path, const RegistrationResult& result,
                        const Image& moving, const Image& fixed);

// summary.png of match-landmarks (2-D only, InputError naming `path` otherwise): both shapes, the
// landmark paths and the deformed grid.
void WriteLandmarkSummaryFigure(const std::string& path, const LandmarkMatchingResult& result);

// One grey image panel of these figures: the mid slice of `values` on `g` in mm (y down), with
// its title, the intensity window [vmin, vmax] and a colour bar.
void ImagePanel(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& values,
                const std::string& title, double vmin, double vmax);

// The deformed grid φ(x) (voxel coordinates, component-major, on `g`) of the mid slice, every
// max(n)/32-th line in `style`, over a faint copy of the fixed image (window [vmin, vmax]).
void DeformedGridPanel(plot::Axes& ax, const Grid& g, const Eigen::VectorXd& fixed,
                       const Eigen::VectorXd& phi, const std::string& title, double vmin,
                       double vmax, const plot::Style& style);

// A 2-D slice (the mid z-slice of a 3-D image) as a matrix: rows = y, cols = x.
Eigen::MatrixXd MidSlice(const Grid& grid, const double* values);

}  // namespace diffeoflow::registration
