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

TEST(Base64, DecodesWhatPythonsB64encodeWritesAndRefusesTheRest) {
  using testfleet::util::base64_decode;
  EXPECT_EQ(base64_decode("aGVsbG8="), std::optional<std::string>("hello"));
  EXPECT_EQ(base64_decode(""), std::optional<std::string>(""));
  EXPECT_EQ(base64_decode("/+8A"), std::optional<std::string>(std::string("\xff\xef\x00", 3)));
  EXPECT_FALSE(base64_decode("a"));
  EXPECT_FALSE(base64_decode("aGVs bG8="));
}
