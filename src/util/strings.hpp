#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace testfleet::util {

std::vector<std::string> split(std::string_view text, char separator);
std::vector<std::string> split_lines(std::string_view text);
std::string join(const std::vector<std::string>& parts, std::string_view separator);
std::string_view trim(std::string_view text);
bool starts_with(std::string_view text, std::string_view prefix);
bool ends_with(std::string_view text, std::string_view suffix);
std::string replace_all(std::string text, std::string_view from, std::string_view to);

// Quotes one word for a POSIX shell so that a printed command can be pasted back (dry runs, FAILED
// lines). Nothing of ours ever runs through a shell.
std::string shell_quote(std::string_view word);
std::string shell_join(const std::vector<std::string>& argv);

// Splits a command line written as one string (a configuration value such as a list command) into
// words, with POSIX shell quoting rules for '...', "..." and backslash; no expansion of any kind.
// Throws UsageError naming the text when a quote is left open.
std::vector<std::string> split_command_line(std::string_view text);

// The last `max_lines` lines of a text, for log tails in error messages.
std::string tail_lines(std::string_view text, std::size_t max_lines);

// "1.2s", "3m04s", "1h02m".
std::string format_duration(double seconds);

// Base64 with padding (RFC 4648 section 4), as SCRAM writes salts, proofs and keys.
std::string base64_encode(std::string_view bytes);
// Nothing when `text` is not padded base64.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace testfleet::util
