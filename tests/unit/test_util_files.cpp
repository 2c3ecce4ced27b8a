#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST(WritePrivateFileTest, OwnerOnlyFromTheStartReplacingWhatWasThereNeverThroughASymlink) {
  TempDir dir("files-test-");
  std::filesystem::path path = dir.path() / "redis.conf";
  std::ofstream(path) << "old, world-readable\n";
  std::filesystem::permissions(path, std::filesystem::perms::all);
  write_private_file(path, "requirepass x\n");
  EXPECT_EQ(read_file(path), "requirepass x\n");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());

  // A symlink planted where the file goes is replaced, not written through.
  std::filesystem::path target = dir.path() / "elsewhere";
  std::ofstream(target) << "untouched";
  std::filesystem::remove(path);
  std::filesystem::create_symlink(target, path);
  write_private_file(path, "secret");
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_EQ(read_file(target), "untouched");
  EXPECT_EQ(read_file(path), "secret");

  try {
    write_private_file(dir.path() / "no" / "such" / "dir", "x");
    FAIL() << "wrote into a missing directory";
  } catch (const InfrastructureError& error) {
    EXPECT_THAT(error.what(), HasSubstr("no/such/dir"));
  }
}

}  // namespace
}  // namespace testfleet::util
