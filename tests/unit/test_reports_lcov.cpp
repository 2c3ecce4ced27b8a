#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "reports/lcov.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::reports {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kData = std::filesystem::path(TESTFLEET_TEST_DATA);

void run(const std::vector<std::string>& argv, const std::filesystem::path& cwd) {
  util::SpawnSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  util::CommandResult result = util::run_command(spec, std::chrono::seconds(120));
  if (!result.status.success()) {
    throw std::runtime_error(util::shell_join(argv) + ": " + result.status.describe() + "\n" + result.output);
  }
}

using Canonical = std::map<std::string, std::multiset<std::string>>;

// A tracefile as a consumer compares it: per "TN|SF", the set of its lines, order-free. Two things of lcov
// 1.16's own data model are left out, since they are not merge results: it lists a file's every FN (and
// fills in DA checksums) under every test name of that file, and it drops records without data. Checksums
// are compared separately.
Canonical comparable(const std::filesystem::path& path) {
  Canonical out;
  std::string key;
  std::multiset<std::string> lines;
  std::set<std::string> called;  // functions with an FNDA in this record
  std::vector<std::string> declared;
  bool data = false;
  for (const std::string& line : util::split_lines(util::read_file(path))) {
    if (util::starts_with(line, "TN:")) {
      key = line.substr(3) + "|";
    } else if (util::starts_with(line, "SF:")) {
      key += line.substr(3);
    } else if (line == "end_of_record") {
      for (const std::string& fn : declared) {
        if (called.count(fn.substr(fn.find(',') + 1))) lines.insert(fn);
      }
      if (data) out[key] = lines;
      lines.clear();
      called.clear();
      declared.clear();
      data = false;
    } else if (util::starts_with(line, "FN:")) {
      declared.push_back(line);
    } else if (util::starts_with(line, "DA:")) {
      std::vector<std::string> fields = util::split(line, ',');
      lines.insert(fields[0] + "," + fields[1]);
      data = true;
    } else if (!line.empty()) {
      if (util::starts_with(line, "FNDA:")) called.insert(line.substr(line.find(',') + 1));
      if (util::starts_with(line, "BRDA:") || util::starts_with(line, "FNDA:")) data = true;
      lines.insert(line);
    }
  }
  return out;
}

std::string lcov_add(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& out) {
  std::vector<std::string> argv = {"lcov", "--quiet", "--rc", "lcov_branch_coverage=1", "--checksum"};
  for (const std::filesystem::path& input : inputs) {
    argv.push_back("-a");
    argv.push_back(input.string());
  }
  argv.push_back("-o");
  argv.push_back(out.string());
  run(argv, out.parent_path());
  return util::read_file(out);
}

class LcovTest : public ::testing::Test {
 protected:
  util::TempDir temp_{"lcov-test-"};
  std::filesystem::path out_ = temp_.path() / "merged.info";
  std::filesystem::path reference_ = temp_.path() / "reference.info";
};

TEST_F(LcovTest, GcovStyleEqualsLcovAdd) {
  std::vector<std::filesystem::path> inputs = {kData / "lcov/gcov/part-1.info",
                                               kData / "lcov/gcov/part-2.info"};
  LcovResult result = merge_lcov(inputs, out_);
  ASSERT_TRUE(result.problems.empty()) << result.problems.front().message;
  lcov_add(inputs, reference_);
  EXPECT_EQ(comparable(out_), comparable(reference_));
  Canonical merged = comparable(out_);
  // The cases the rules are about, spelled out.
  const std::multiset<std::string>& cart = merged["unit|/src/cart.c"];
  EXPECT_EQ(cart.count("BRDA:4,0,0,3"), 1u);   // n + "-"
  EXPECT_EQ(cart.count("BRDA:11,0,1,-"), 1u);  // "-" + "-"
  EXPECT_EQ(cart.count("BRDA:21,0,0,0"), 1u);  // 0 + "-" stays 0: the line ran
  EXPECT_EQ(cart.count("FNDA:5,cart_total"), 1u);
  EXPECT_EQ(cart.count("LH:8"), 1u);
  EXPECT_EQ(result.records, 4u);
  EXPECT_EQ(result.lines_found, 8u + 2u + 1u + 2u);
  EXPECT_EQ(result.lines_hit, 8u + 2u + 1u + 0u);
  EXPECT_EQ(result.branches_found, 8u);
  EXPECT_EQ(result.branches_hit, 4u);
  EXPECT_EQ(result.functions_found, 3u + 1u + 1u + 1u);
  EXPECT_EQ(result.functions_hit, 3u + 1u + 1u + 0u);
  // Checksums are kept with their line.
  EXPECT_THAT(util::read_file(out_), HasSubstr("DA:12,2,v2w3x4\n"));
}

TEST_F(LcovTest, CoveragePyRealOutputEqualsLcovAdd) {
  // A project measured in two parts, each in its own checkout, by coverage.py's own LCOV report.
  std::vector<std::filesystem::path> inputs;
  for (const char* part : {"tests/test_cart.py", "tests/test_tax.py"}) {
    std::string name = "g" + std::to_string(inputs.size() + 1);
    std::filesystem::path checkout = temp_.path() / name;
    std::filesystem::copy(kData / "cobertura/project", checkout, std::filesystem::copy_options::recursive);
    std::string data = (temp_.path() / (".coverage." + name)).string();
    run({"/usr/bin/python3", "-B", "-m", "coverage", "run", "--data-file=" + data, "-m", "pytest", "-q", "-p",
         "no:cacheprovider", part},
        checkout);
    inputs.push_back(temp_.path() / (name + ".info"));
    run({"/usr/bin/python3", "-B", "-m", "coverage", "lcov", "--data-file=" + data, "-o",
         inputs.back().string()},
        checkout);
  }
  LcovResult result = merge_lcov(inputs, out_);
  ASSERT_TRUE(result.problems.empty()) << result.problems.front().message;
  lcov_add(inputs, reference_);
  Canonical merged = comparable(out_);
  EXPECT_EQ(merged, comparable(reference_));
  EXPECT_NE(merged, comparable(inputs[0]));
  EXPECT_EQ(merged.count("|shop/cart.py"), 1u);
  EXPECT_GT(result.branches_found, 0u);
}

TEST_F(LcovTest, BranchTextWithCommasIsOneBranch) {
  // coverage.py >= 7.6 writes prose for the branch; lcov 1.16 cannot read it, so the expected merge is
  // written from the format's rules.
  LcovResult result =
      merge_lcov({kData / "lcov/coveragepy/part-1.info", kData / "lcov/coveragepy/part-2.info"}, out_);
  ASSERT_TRUE(result.problems.empty()) << result.problems.front().message;
  EXPECT_EQ(util::read_file(out_), util::read_file(kData / "lcov/coveragepy/expected.info"));
  EXPECT_EQ(result.branches_found, 3u);
  EXPECT_EQ(result.branches_hit, 3u);
}

TEST_F(LcovTest, LocatedFunctionsMergeWithTheirAliases) {
  // lcov >= 2.2's FNL/FNA: indices are per file, so functions are merged by name and regrouped by place.
  LcovResult result =
      merge_lcov({kData / "lcov/located/part-1.info", kData / "lcov/located/part-2.info"}, out_);
  ASSERT_TRUE(result.problems.empty()) << result.problems.front().message;
  EXPECT_EQ(util::read_file(out_), util::read_file(kData / "lcov/located/expected.info"));
  EXPECT_EQ(result.functions_found, 3u);
  EXPECT_EQ(result.functions_hit, 2u);
}

TEST_F(LcovTest, BadInputsAreRecordedAndTheGoodOnesMerged) {
  const std::filesystem::path bad = kData / "lcov/bad";
  LcovResult result =
      merge_lcov({bad / "truncated.info", kData / "lcov/gcov/part-1.info", bad / "not-a-number.info",
                  bad / "negative.info", bad / "orphan-fna.info", bad / "outside.info"},
                 out_);
  ASSERT_EQ(result.problems.size(), 5u);
  EXPECT_EQ(
      result.problems[0].message,
      (bad / "truncated.info").string() + ":6: truncated: the record that starts here has no end_of_record");
  EXPECT_EQ(result.problems[1].message,
            (bad / "not-a-number.info").string() + ":4: count \"four\" is not a whole number");
  EXPECT_EQ(result.problems[2].message,
            (bad / "negative.info").string() + ":2: count \"-1\" is not a whole number");
  EXPECT_EQ(result.problems[3].message,
            (bad / "orphan-fna.info").string() + ":2: FNA for index 3 that no FNL declared");
  EXPECT_EQ(result.problems[4].message,
            (bad / "outside.info").string() + ":2: DA outside a record (no SF before it)");
  EXPECT_EQ(comparable(out_), comparable(kData / "lcov/gcov/part-1.info"));
  EXPECT_EQ(result.records, 2u);
}

TEST_F(LcovTest, ChecksumMismatchIsReportedAndTheFirstKept) {
  std::filesystem::path changed = temp_.path() / "changed.info";
  util::write_file_atomic(changed, "TN:unit\nSF:/src/price.c\nDA:1,1,zzz\nDA:2,0,yyy\nend_of_record\n");
  std::filesystem::path first = temp_.path() / "first.info";
  util::write_file_atomic(first, "TN:unit\nSF:/src/price.c\nDA:1,2,aaa\nend_of_record\n");
  LcovResult result = merge_lcov({first, changed}, out_);
  EXPECT_TRUE(result.problems.empty());
  ASSERT_EQ(result.warnings.size(), 1u);
  EXPECT_EQ(result.warnings[0].file, changed);
  EXPECT_THAT(result.warnings[0].message, HasSubstr("SF:/src/price.c DA:1: checksum zzz differs from aaa"));
  EXPECT_THAT(util::read_file(out_), HasSubstr("DA:1,3,aaa\nDA:2,0,yyy\n"));
}

TEST_F(LcovTest, EmptyAndMissingInputs) {
  std::filesystem::path empty = temp_.path() / "empty.info";
  util::write_file_atomic(empty, "");
  LcovResult result = merge_lcov({empty, temp_.path() / "missing.info"}, out_);
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_THAT(result.problems[0].message, HasSubstr("missing.info: cannot read"));
  EXPECT_EQ(result.records, 0u);
  EXPECT_EQ(util::read_file(out_), "");
}

}  // namespace
}  // namespace testfleet::reports
