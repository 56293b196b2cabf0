#include "daemon/shell/command_line.hpp"

namespace failoverd {

namespace po = boost::program_options;

void parse_command_line(const std::vector<std::string>& args,
                        const po::options_description& options, po::variables_map& vm,
                        const po::positional_options_description* positional) {
    po::command_line_parser parser(args);
    parser.options(options);
    if (positional != nullptr) {
        parser.positional(*positional);
    }
    const po::parsed_options parsed = parser.run();
    if (positional == nullptr) {
        for (const auto& option : parsed.options) {
            if (option.string_key.empty() && !option.original_tokens.empty()) {
                throw po::error("unexpected argument '" + option.original_tokens.front() +
                                "' (this command takes options only)");
            }
        }
    }
    po::store(parsed, vm);
    po::notify(vm);
}

}  // namespace failoverd
