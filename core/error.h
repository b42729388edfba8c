// omni::Error and the error categories every module throws (DESIGN.md section 8).
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

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

// Why a run ended in a RunError.
enum class ErrorKind {
  kInput,      // a node threw InputError: bad media, weights or other input
  kConfig,     // a node threw ConfigError (e.g. a parameter value it only checks in open())
  kInternal,   // a bug: a node threw TypeError or any other exception, or broke a runtime rule
  kCancelled,  // Graph::cancel()
  kDeadlock,   // no node could run and the graph was not finished
};
const char* error_kind_name(ErrorKind k);  // "input", "config", "internal", "cancelled", "deadlock"

// Thrown by Graph::run() / wait(): the run failed. what() carries one context prefix (node, type,
// call and timestamp) before the node's own message; kind() says which sort of failure it was, and
// cause() holds the node's original exception (InputError, ConfigError, ...) to rethrow or inspect.
class RunError : public Error {
 public:
  explicit RunError(const std::string& what, ErrorKind kind = ErrorKind::kInternal,
                    std::exception_ptr cause = nullptr)
      : Error(what), kind_(kind), cause_(std::move(cause)) {}
  ErrorKind kind() const { return kind_; }
  bool cancelled() const { return kind_ == ErrorKind::kCancelled; }
  // The exception the node threw; null for cancellation, deadlock and runtime-rule failures.
  const std::exception_ptr& cause() const { return cause_; }

 private:
  ErrorKind kind_;
  std::exception_ptr cause_;
};

}  // namespace omni
