#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/error.hpp"
#include "util/files.hpp"

using namespace std::string_literals;

namespace testfleet::util {
namespace {

using ::testing::HasSubstr;

TEST(ReadFileTest, ReadsRegularFilesWholeAndFilesWithoutASize) {
  TempDir dir("files-test-");
  std::string content(300000, 'x');
  content += "\nend\0with a NUL"s;
  std::filesystem::path path = dir.path() / "big.txt";
  std::ofstream(path, std::ios::binary) << content;
  EXPECT_EQ(read_file(path), content);
  std::ofstream(dir.path() / "empty.txt").close();
  EXPECT_EQ(read_file(dir.path() / "empty.txt"), "");
  // /proc files report a size of 0 and have content all the same.
  EXPECT_THAT(read_file("/proc/self/status"), HasSubstr("Pid:"));
}

TEST(ReadFileTest, ErrorsNameThePath) {
  TempDir dir("files-test-");
  try {
    read_file(dir.path() / "missing.txt");
    FAIL() << "a missing file was read";
  } catch (const UsageError& error) {
    EXPECT_THAT(error.what(), HasSubstr("missing.txt"));
  }
  try {
    read_file(dir.path());
    FAIL() << "a directory was read";
  } catch (const UsageError& error) {
    EXPECT_THAT(error.what(), HasSubstr("it is a directory"));
  }
}

}  // namespace
}  // namespace testfleet::util
