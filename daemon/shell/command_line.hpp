// Command-line parsing shared by failoverd and every failoverctl command.
#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

namespace failoverd {

// Parses `args` against `options` (and `positional`, when the command takes words) and stores
// the result in `vm`. Boost keeps a word that is neither an option nor an option's value as a
// positional one and, when the command takes none, drops it without a word: here such a word
// is an error (boost::program_options::error naming it), so `--check-config bad.conf` or
// `check web` cannot run something else than what was asked.
void parse_command_line(
    const std::vector<std::string>& args,
    const boost::program_options::options_description& options,
    boost::program_options::variables_map& vm,
    const boost::program_options::positional_options_description* positional = nullptr);

}  // namespace failoverd
