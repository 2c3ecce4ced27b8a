#include <gtest/gtest.h>

#include "util/error.hpp"
#include "util/strings.hpp"

using namespace testfleet::util;

TEST(SplitCommandLine, QuotesAndEscapes) {
  EXPECT_EQ(split_command_line(R"(pytest -q 'a b' "c \"d\"" e\ f)"),
            (std::vector<std::string>{"pytest", "-q", "a b", "c \"d\"", "e f"}));
  EXPECT_THROW(split_command_line("echo 'open"), testfleet::UsageError);
}

TEST(ShellQuote, RoundTripsThroughSplit) {
  std::vector<std::string> words = {"plain", "with space", "it's", "$HOME", "tab\there", "[x-1]", ""};
  EXPECT_EQ(split_command_line(shell_join(words)), words);
}

TEST(TailLines, KeepsTheLastLines) {
  EXPECT_EQ(tail_lines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(tail_lines("a\nb", 5), "a\nb");
}

TEST(FormatDuration, Units) {
  EXPECT_EQ(format_duration(1.25), "1.2s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}
