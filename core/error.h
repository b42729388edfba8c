// omni::Error and the error categories every module throws (DESIGN.md section 8).
#pragma once

#include <stdexcept>
#include <string>

namespace omni {

// Base of every error omnipipe throws. The message says what failed, where, and what was expected.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A packet was read as a type it does not hold.
class TypeError : public Error {
 public:
  using Error::Error;
};

// A graph, parameter or YAML file is wrong. Carries the location when known.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Media, weights or other input files that cannot be read or are malformed.
class InputError : public Error {
 public:
  using Error::Error;
};

// run() failed: a node threw, the graph deadlocked, or the caller cancelled.
class RunError : public Error {
 public:
  using Error::Error;
};

}  // namespace omni
