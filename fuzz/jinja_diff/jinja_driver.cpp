// Reads JSON lines {"t": template, "c": context} on stdin and writes one JSON line per input:
// {"ok": rendered} or {"err": InputError message} (or {"crash": ...} for any other exception).
// Used by fuzz/jinja_diff/jinja_diff.py. Build (from the repository root, after building
// omni_template), e.g. with sanitizers:
//   g++ -std=c++20 -O1 -g -fsanitize=address,undefined -I. fuzz/jinja_diff/jinja_driver.cpp \
//       modalities/text/jinja/{lexer,parser,value,builtins,filters,render}.cpp -o /tmp/jinja_driver
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include "core/error.h"
#include "modalities/text/jinja/jinja.h"
int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    auto j = nlohmann::ordered_json::parse(line);
    nlohmann::ordered_json out;
    try {
      omni::jinja::Limits lim;
      lim.max_loop_iterations = 100000;
      out["ok"] = omni::jinja::render(j["t"].get<std::string>(), j["c"], lim);
    } catch (const omni::InputError& e) {
      out["err"] = e.what();
    } catch (const std::exception& e) {
      out["crash"] = std::string("std::exception: ") + e.what();
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n"
              << std::flush;
  }
}
