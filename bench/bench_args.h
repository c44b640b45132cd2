// The key=value command lines of the benchmarks.
#pragma once

#include <iostream>
#include <map>
#include <string>

namespace diffeoflow::bench {

// Every argument as key=value; false (after one line on stderr naming `program`) when one is not.
inline bool ParseKeyValues(int argc, char** argv, const std::string& program,
                           std::map<std::string, std::string>& args) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto eq = a.find('=');
    if (eq == std::string::npos) {
      std::cerr << program << ": expected key=value, got '" << a << "'\n";
      return false;
    }
    args[a.substr(0, eq)] = a.substr(eq + 1);
  }
  return true;
}

}  // namespace diffeoflow::bench
