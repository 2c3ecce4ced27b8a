#include "cli/help_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <string_view>
#include <vector>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace testfleet::cli {
namespace {

constexpr const char* kProgram = "testfleet";

// Subcommands that `--help` lists: CLI11 hides those whose group is empty.
std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* sub) { return !sub->get_group().empty(); });
}

std::vector<const CLI::Option*> visible_options(const CLI::App& app) {
  return app.get_options([](const CLI::Option* option) { return !option->get_group().empty(); });
}

// Text as troff shows it literally: backslashes escaped, hyphens as the ASCII minus that a reader copies
// into a shell, and no line that troff would take for a request.
std::string escape(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

std::string trim_copy(std::string_view text) {
  return std::string(util::trim(text));
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// "Usage: testfleet run [OPTIONS] [command...]" as CLI11 prints it, without the label.
std::string synopsis(const CLI::Formatter& formatter, const CLI::App& sub, const std::string& name) {
  std::string usage = trim_copy(formatter.make_usage(&sub, name));
  std::string_view label = "Usage:";
  if (util::starts_with(usage, label)) usage = trim_copy(std::string_view(usage).substr(label.size()));
  return usage;
}

// Positionals first, then options, as `--help` lists them; a subcommand's own --help is left out, since
// every command has it and the page says so once.
void render_options(const CLI::Formatter& formatter, const CLI::App& app, bool with_help, std::ostream& out) {
  std::vector<const CLI::Option*> options = visible_options(app);
  std::stable_partition(options.begin(), options.end(),
                        [](const CLI::Option* option) { return option->get_positional(); });
  for (const CLI::Option* option : options) {
    if (!with_help && option == app.get_help_ptr()) continue;
    bool positional = option->get_positional();
    std::string name = formatter.make_option_name(option, positional);
    std::string::size_type comma;
    while ((comma = name.find(',')) != std::string::npos && name.compare(comma, 2, ", ") != 0) {
      name.replace(comma, 1, ", ");
    }
    std::string opts = trim_copy(formatter.make_option_opts(option));
    out << ".TP\n\\fB" << escape(name) << "\\fR";
    if (!opts.empty()) out << " \\fI" << escape(opts) << "\\fR";
    out << "\n" << escape(trim_copy(option->get_description())) << "\n";
  }
}

struct FooterBlock {
  std::string heading;             // "Exit codes" for a block whose first line is "Exit codes:"
  std::vector<std::string> lines;  // the rest, as written
};

// A footer is blocks separated by blank lines; a block that opens with a short line ending in ':' is a
// heading over a list (exit codes, examples), kept line by line; any other block is prose.
std::vector<FooterBlock> footer_blocks(const std::string& footer) {
  std::vector<FooterBlock> blocks;
  std::vector<std::string> current;
  auto flush = [&] {
    if (current.empty()) return;
    FooterBlock block;
    std::string first = trim_copy(current.front());
    if (current.size() > 1 && first.size() < 40 && !first.empty() && first.back() == ':') {
      block.heading = first.substr(0, first.size() - 1);
      block.lines.assign(current.begin() + 1, current.end());
    } else {
      block.lines = current;
    }
    blocks.push_back(std::move(block));
    current.clear();
  };
  for (const std::string& line : util::split_lines(footer)) {
    if (trim_copy(line).empty()) {
      flush();
    } else {
      current.push_back(line);
    }
  }
  flush();
  return blocks;
}

void render_block_body(const FooterBlock& block, std::ostream& out) {
  if (block.heading.empty()) {
    std::string prose;
    for (const std::string& line : block.lines) prose += (prose.empty() ? "" : " ") + trim_copy(line);
    out << escape(prose) << "\n";
    return;
  }
  out << ".nf\n";
  for (const std::string& line : block.lines) out << escape(line) << "\n";
  out << ".fi\n";
}

// A subcommand's footer goes under its own heading; the program's footer becomes sections of the page.
void render_footer(const std::string& footer, bool top_level, std::ostream& out) {
  for (const FooterBlock& block : footer_blocks(footer)) {
    if (top_level && !block.heading.empty()) {
      out << ".SH " << escape(upper(block.heading)) << "\n";
    } else {
      out << ".PP\n";
      if (!block.heading.empty()) out << "\\fB" << escape(block.heading) << ":\\fR\n";
    }
    render_block_body(block, out);
  }
}

// "testfleet: split a slow test suite ..., run ..." -> "split a slow test suite ...": the NAME line.
std::string one_line_summary(const std::string& description) {
  std::string text = trim_copy(description);
  std::string prefix = std::string(kProgram) + ":";
  if (util::starts_with(text, prefix)) text = trim_copy(std::string_view(text).substr(prefix.size()));
  std::string::size_type end = text.find_first_of(",.");
  if (end != std::string::npos) text.resize(end);
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text;
}

std::string prose(const std::string& text) {
  std::string joined;
  for (const std::string& line : util::split_lines(text)) {
    std::string trimmed = trim_copy(line);
    if (!trimmed.empty()) joined += (joined.empty() ? "" : " ") + trimmed;
  }
  return joined;
}

}  // namespace

CLI::App* add_help_command(CLI::App& app, HelpRequest& request) {
  CLI::App* help = app.add_subcommand("help", "Show the help of a command, or the whole manual");
  help->add_option("command", request.topic, "The command to explain (default: the program)");
  help->add_flag("--man", request.man, "Print the whole manual as a man page (troff), e.g. | man -l -");
  help->footer("\nExamples:\n  testfleet help run\n  testfleet help --man > testfleet.1");
  return help;
}

int print_help(const CLI::App& app, const HelpRequest& request, std::ostream& out) {
  if (request.man) {
    if (!request.topic.empty()) {
      throw UsageError(
          fmt::format("help --man prints the whole manual: give no command (got '{}')", request.topic));
    }
    out << render_man_page(app);
    return 0;
  }
  // The formatter directly, not App::help(): that would explain the subcommand being parsed, `help` itself.
  // The names are the ones CLI11 gives `--help`, so that `help run` prints exactly what `run --help` does.
  if (request.topic.empty()) {
    out << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  }
  std::vector<std::string> topics;
  for (const CLI::App* sub : visible_subcommands(app)) {
    if (sub->get_name() == request.topic) {
      std::string name = app.get_name().empty() ? sub->get_name() : app.get_name() + " " + sub->get_name();
      out << sub->get_formatter()->make_help(sub, name, CLI::AppFormatMode::Normal);
      return 0;
    }
    topics.push_back(sub->get_name());
  }
  throw UsageError(fmt::format("no command '{}' to explain: the commands are {}", request.topic,
                               util::join(topics, ", ")));
}

std::string render_man_page(const CLI::App& app) {
  CLI::Formatter formatter;
  std::ostringstream out;
  std::string version = app.version();
  out << ".\\\" Generated by `testfleet help --man` from the program's own option definitions: edit those.\n";
  out << ".TH TESTFLEET 1 \"\" \"" << escape(version.empty() ? kProgram : version)
      << "\" \"User Commands\"\n";
  out << ".SH NAME\n" << kProgram << " \\- " << escape(one_line_summary(app.get_description())) << "\n";

  std::vector<const CLI::App*> subcommands = visible_subcommands(app);
  out << ".SH SYNOPSIS\n";
  for (const CLI::App* sub : subcommands) {
    out << ".B " << escape(synopsis(formatter, *sub, fmt::format("{} {}", kProgram, sub->get_name())))
        << "\n.br\n";
  }
  out << ".B " << kProgram << " \\-\\-help | \\-\\-version\n";

  out << ".SH DESCRIPTION\n" << escape(prose(app.get_description())) << "\n";
  out << ".PP\nEvery command takes \\fB\\-h\\fR, \\fB\\-\\-help\\fR; \\fBtestfleet help\\fR \\fICOMMAND\\fR "
         "prints the same text.\n";

  out << ".SH OPTIONS\n";
  render_options(formatter, app, true, out);

  out << ".SH COMMANDS\n";
  for (const CLI::App* sub : subcommands) {
    out << ".SS \"" << escape(synopsis(formatter, *sub, fmt::format("{} {}", kProgram, sub->get_name())))
        << "\"\n";
    out << escape(prose(sub->get_description())) << "\n";
    render_options(formatter, *sub, false, out);
    // CLI11 gives a subcommand without a footer of its own the program's: the page says that once.
    if (sub->get_footer() != app.get_footer()) render_footer(sub->get_footer(), false, out);
  }
  render_footer(app.get_footer(), true, out);
  return out.str();
}

}  // namespace testfleet::cli
