// Log set-up for the daemon and the CLI: journald under systemd, stderr otherwise.
#pragma once

#include <optional>
#include <string>

namespace failoverd {

enum class LogTarget { Auto, Stderr, Journal };

// Throws std::invalid_argument for an unknown level name (start-up only).
void setup_logging(const std::string& level, LogTarget target = LogTarget::Auto);

// True when stderr is connected to the journal (systemd sets JOURNAL_STREAM for us).
bool started_by_systemd();

}  // namespace failoverd
