// Exceptions for errors a user can cause. The message names the file or argument and says what
// was expected; the CLI prints it on one line and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace diffeoflow {

// Bad input: a missing or malformed file, an invalid option value, mismatched sizes.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An input file or folder that does not exist (the Python module raises FileNotFoundError for it;
// for the CLI it is an InputError like any other).
class MissingFileError : public InputError {
 public:
  using InputError::InputError;
};

// A numerical failure the user should hear about: NaN/Inf in a state or loss, a folded map,
// too many steps. Thrown only where a Summary status cannot carry it.
class NumericalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace diffeoflow
