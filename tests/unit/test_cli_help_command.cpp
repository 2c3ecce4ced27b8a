#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "cli/help_command.hpp"
#include "util/error.hpp"

namespace testfleet::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small program shaped like testfleet's: a described app with a footer, two visible subcommands with
// options and a positional, and a hidden one.
struct Program {
  CLI::App app{"testfleet: split a slow test suite into groups, run them.\n"};
  int groups = 0;
  std::vector<std::string> command;
  std::string out;
  HelpRequest request;
  CLI::App* help = nullptr;

  Program() {
    app.name("testfleet");
    app.set_version_flag("--version", "testfleet 9.8.7 (revision abc)");
    // As testfleet's: exactly one command, so that in `help run` the word run is help's topic.
    app.require_subcommand(1);
    app.footer(
        "\nExit codes:\n  0    every test passed\n  2    usage error\n\nExamples:\n  testfleet run -- "
        "pytest\n");
    CLI::App* run = app.add_subcommand("run", "Run every group");
    run->add_option("-n,--groups", groups, "Number of groups (default: one per core)");
    run->add_option("command", command, "The test command, after --")->expected(-1);
    run->footer("\nA path like C:\\tmp is kept.\n.starts with a dot\n");
    CLI::App* merge = app.add_subcommand("merge", "Merge report files");
    merge->add_option("out", out, "The merged file")->required();
    app.add_subcommand("secret", "Not for users")->group("");
    help = add_help_command(app, request);
  }

  std::string page() const { return render_man_page(app); }
};

TEST(HelpCommand, ManPageHasTheHeaderNameAndSynopsisOfEveryVisibleCommand) {
  Program p;
  std::string page = p.page();
  EXPECT_THAT(page, HasSubstr(".TH TESTFLEET 1 \"\" \"testfleet 9.8.7 (revision abc)\" \"User Commands\"\n"));
  EXPECT_THAT(page, HasSubstr(".SH NAME\ntestfleet \\- split a slow test suite into groups\n"));
  EXPECT_THAT(page, HasSubstr(".B testfleet run [OPTIONS] [command...]\n"));
  EXPECT_THAT(page, HasSubstr(".B testfleet merge [OPTIONS] out\n"));
  EXPECT_THAT(page, HasSubstr(".SS \"testfleet help [OPTIONS] [command]\"\n"));
  EXPECT_THAT(page, Not(HasSubstr("secret")));
}

TEST(HelpCommand, ManPageListsOptionsWithTheirTypesAndDescriptions) {
  Program p;
  std::string page = p.page();
  EXPECT_THAT(
      page,
      HasSubstr(".TP\n\\fB\\-n, \\-\\-groups\\fR \\fIINT\\fR\nNumber of groups (default: one per core)\n"));
  EXPECT_THAT(page, HasSubstr(".TP\n\\fBcommand\\fR \\fITEXT ...\\fR\nThe test command, after \\-\\-\n"));
  // Positionals come before options, as in --help.
  EXPECT_LT(page.find("\\fBcommand\\fR"), page.find("\\-\\-groups"));
  // The program's own options are listed once; subcommands do not repeat --help.
  EXPECT_THAT(page, HasSubstr(".SH OPTIONS\n.TP\n\\fB\\-h, \\-\\-help\\fR"));
  std::string commands = page.substr(page.find(".SH COMMANDS"));
  EXPECT_THAT(commands, Not(HasSubstr("\\-\\-help\\fR")));
}

TEST(HelpCommand, FootersBecomeSectionsAndTextIsEscapedForTroff) {
  Program p;
  std::string page = p.page();
  EXPECT_THAT(page, HasSubstr(".SH EXIT CODES\n.nf\n  0    every test passed\n  2    usage error\n.fi\n"));
  EXPECT_THAT(page, HasSubstr(".SH EXAMPLES\n.nf\n  testfleet run \\-\\- pytest\n.fi\n"));
  // A backslash is printed, not taken as an escape; a leading dot is not taken as a request.
  EXPECT_THAT(page, HasSubstr("A path like C:\\etmp is kept. .starts with a dot\n"));
  for (const std::string& line : {std::string("\n.starts"), std::string("\n'")}) {
    EXPECT_THAT(page, Not(HasSubstr(line)));
  }
}

TEST(HelpCommand, AFooterInheritedFromTheProgramIsNotRepeated) {
  Program p;
  p.app.add_subcommand("clean", "Remove leftovers");  // CLI11 copies the program's footer into it
  std::string page = p.page();
  std::string clean = page.substr(page.find(".SS \"testfleet clean"));
  clean = clean.substr(0, clean.find("\n.S", 3));  // up to the next command or section
  EXPECT_THAT(clean, Not(HasSubstr("every test passed")));
  EXPECT_THAT(page, HasSubstr(".SH EXIT CODES\n"));
}

TEST(HelpCommand, HelpWithoutATopicExplainsTheProgram) {
  Program p;
  p.app.parse(std::vector<std::string>{"help"});
  ASSERT_TRUE(p.help->parsed());
  std::ostringstream out;
  EXPECT_EQ(print_help(p.app, p.request, out), 0);
  EXPECT_THAT(out.str(), HasSubstr("Usage: testfleet [OPTIONS] SUBCOMMAND"));
  EXPECT_THAT(out.str(), HasSubstr("Merge report files"));
}

TEST(HelpCommand, HelpOfACommandIsItsOwnHelp) {
  Program p;
  // CLI11 takes the arguments in reverse order.
  p.app.parse(std::vector<std::string>{"run", "help"});
  EXPECT_EQ(p.request.topic, "run");
  std::ostringstream out;
  EXPECT_EQ(print_help(p.app, p.request, out), 0);
  EXPECT_THAT(out.str(), HasSubstr("Usage: testfleet run [OPTIONS] [command...]"));
  EXPECT_THAT(out.str(), HasSubstr("Number of groups (default: one per core)"));
  EXPECT_THAT(out.str(), Not(HasSubstr("Merge report files")));
}

TEST(HelpCommand, HelpOfACommandIsWhatItsHelpFlagPrintsEvenInAnUnnamedProgram) {
  for (const char* name : {"testfleet", ""}) {
    Program p;
    p.app.name(name);
    p.request.topic = "run";
    std::ostringstream out;
    print_help(p.app, p.request, out);
    // What CLI11 prints for `run --help`: the help of the program with run selected.
    p.app.parse(std::vector<std::string>{"run"});
    EXPECT_EQ(out.str(), p.app.help()) << "program name '" << name << "'";
  }
}

TEST(HelpCommand, AnUnknownTopicNamesTheCommandsThereAre) {
  Program p;
  p.request.topic = "secret";
  std::ostringstream out;
  try {
    print_help(p.app, p.request, out);
    FAIL() << "expected a UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no command 'secret' to explain: the commands are run, merge, help"));
  }
}

TEST(HelpCommand, ManTakesNoTopic) {
  Program p;
  p.request.man = true;
  p.request.topic = "run";
  std::ostringstream out;
  EXPECT_THROW(print_help(p.app, p.request, out), UsageError);
  p.request.topic.clear();
  EXPECT_EQ(print_help(p.app, p.request, out), 0);
  EXPECT_EQ(out.str(), p.page());
}

}  // namespace
}  // namespace testfleet::cli
