// The key=value command lines of the benchmarks.
#pragma once

#include <cstdlib>
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

// args[key] as a number (atof) or as text, `fallback` when absent.
inline double Number(const std::map<std::string, std::string>& args, const std::string& key,
                     double fallback) {
  const auto it = args.find(key);
  return it != args.end() ? std::atof(it->second.c_str()) : fallback;
}
inline std::string Text(const std::map<std::string, std::string>& args, const std::string& key,
                        const std::string& fallback) {
  const auto it = args.find(key);
  return it != args.end() ? it->second : fallback;
}

}  // namespace diffeoflow::bench
