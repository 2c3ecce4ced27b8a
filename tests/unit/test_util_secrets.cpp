#include <gtest/gtest.h>

#include <set>
#include <string>

#include "util/secrets.hpp"

using namespace testfleet::util;

TEST(RandomSecret, SixtyFourHexDigitsAndNeverTheSameTwice) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string secret = random_secret();
    ASSERT_EQ(secret.size(), 64u);
    EXPECT_EQ(secret.find_first_not_of("0123456789abcdef"), std::string::npos) << secret;
    seen.insert(secret);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(RandomBytes, AsManyAsAskedAndEveryByteValueTurnsUp) {
  EXPECT_EQ(random_bytes(0), "");
  std::string bytes = random_bytes(65536);
  ASSERT_EQ(bytes.size(), 65536u);
  // 65,536 uniform bytes miss one of the 256 values with a probability of about 256 * e^-256.
  std::set<unsigned char> values(bytes.begin(), bytes.end());
  EXPECT_EQ(values.size(), 256u);
}

TEST(Redact, EveryOccurrenceOfEverySecret) {
  EXPECT_EQ(redact("postgres://postgres:s3cr3t@127.0.0.1:5/p and again s3cr3t; redis://:other@h",
                   {"s3cr3t", "other"}),
            "postgres://postgres:***@127.0.0.1:5/p and again ***; redis://:***@h");
  EXPECT_EQ(redact("aaaa", {"aa"}), "******");
  // An empty secret would match everywhere: it is no secret and is ignored.
  EXPECT_EQ(redact("unchanged", {"", "absent"}), "unchanged");
}
