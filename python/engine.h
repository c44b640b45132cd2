// The ODE engine from Python (DESIGN.md: python/): `diffeoflow.Dynamics`, a base class whose
// Python subclasses give f(t, x, θ) and its vector–Jacobian products (solvers/dynamics.h), and
// `integrate` / `gradient` over solvers/integrate.h, as the command line and the C++ tests use it.
#pragma once

#include <pybind11/pybind11.h>

namespace diffeoflow::python {

// Adds Dynamics, Summary, integrate and gradient to `m`.
void BindEngine(pybind11::module_& m);

}  // namespace diffeoflow::python
