#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <pugixml.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "reports/cobertura.hpp"
#include "util/error.hpp"
#include "util/files.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace testfleet::reports {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kData = std::filesystem::path(TESTFLEET_TEST_DATA) / "cobertura";

void run(const std::vector<std::string>& argv, const std::filesystem::path& cwd) {
  util::SpawnSpec spec;
  spec.argv = argv;
  spec.cwd = cwd;
  util::CommandResult result = util::run_command(spec, std::chrono::seconds(120));
  if (!result.status.success()) {
    throw std::runtime_error(util::shell_join(argv) + ": " + result.status.describe() + "\n" + result.output);
  }
}

pugi::xml_document parse(const std::filesystem::path& path) {
  pugi::xml_document doc;
  pugi::xml_parse_result result = doc.load_file(path.c_str());
  if (!result) throw std::runtime_error(path.string() + ": " + result.description());
  return doc;
}

void write(const std::filesystem::path& path, const std::string& content) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// What a consumer can tell of a line: covered or not (coverage.py writes hits 0/1, a merge sums them),
// and its branch attributes.
using LineView = std::tuple<bool, std::string, std::string, std::string>;
using ClassView = std::map<unsigned, LineView>;

struct ReportView {
  std::map<std::string, std::string> root;      // counts and rates of <coverage>
  std::map<std::string, std::string> packages;  // name -> "line-rate branch-rate"
  std::map<std::string, std::string> classes;   // filename -> "name package line-rate branch-rate"
  std::map<std::string, ClassView> lines;       // filename -> lines
};

ReportView view(const std::filesystem::path& path) {
  pugi::xml_document doc = parse(path);
  pugi::xml_node coverage = doc.child("coverage");
  ReportView out;
  for (const char* name :
       {"lines-valid", "lines-covered", "line-rate", "branches-valid", "branches-covered", "branch-rate"}) {
    out.root[name] = coverage.attribute(name).value();
  }
  for (pugi::xml_node package : coverage.child("packages").children("package")) {
    out.packages[package.attribute("name").value()] =
        std::string(package.attribute("line-rate").value()) + " " + package.attribute("branch-rate").value();
    for (pugi::xml_node klass : package.child("classes").children("class")) {
      std::string filename = klass.attribute("filename").value();
      out.classes[filename] = std::string(klass.attribute("name").value()) + " " +
                              package.attribute("name").value() + " " + klass.attribute("line-rate").value() +
                              " " + klass.attribute("branch-rate").value();
      ClassView& lines = out.lines[filename];
      for (pugi::xml_node line : klass.child("lines").children("line")) {
        lines[line.attribute("number").as_uint()] = LineView{
            line.attribute("hits").as_ullong() > 0,
            std::string_view(line.attribute("branch").value()) == "true" ? "true" : "",
            line.attribute("condition-coverage").value(), line.attribute("missing-branches").value()};
      }
    }
  }
  return out;
}

// The real thing: a small project tested in two parts, each in its own checkout (as groups run in their
// own containers or temporary directories), measured by coverage.py with branch coverage; the reference is
// `coverage combine` (with [paths] mapping both checkouts) + `coverage xml`.
class CoberturaRealTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = std::make_unique<util::TempDir>("cobertura-test-");
    const std::filesystem::path& dir = temp_->path();
    const std::filesystem::path project = kData / "project";
    struct Part {
      std::string name;
      std::string tests;
    };
    for (const Part& part : {Part{"g1", "tests/test_cart.py"}, Part{"g2", "tests/test_tax.py"}}) {
      std::filesystem::copy(project, dir / part.name, std::filesystem::copy_options::recursive);
      std::string data = (dir / (".coverage." + part.name)).string();
      run({"/usr/bin/python3", "-B", "-m", "coverage", "run", "--data-file=" + data, "-m", "pytest", "-q",
           "-p", "no:cacheprovider", part.tests},
          dir / part.name);
      run({"/usr/bin/python3", "-B", "-m", "coverage", "xml", "--data-file=" + data, "-o",
           (dir / (part.name + ".xml")).string()},
          dir / part.name);
    }
    std::filesystem::copy(project, dir / "whole", std::filesystem::copy_options::recursive);
    write(dir / "whole/.coveragerc",
          "[run]\nbranch = True\nsource = shop\n[paths]\nsource =\n    " + (dir / "whole/shop").string() +
              "\n    " + (dir / "g1/shop").string() + "\n    " + (dir / "g2/shop").string() + "\n");
    std::string data = (dir / ".coverage").string();
    run({"/usr/bin/python3", "-B", "-m", "coverage", "combine", "--keep", "--data-file=" + data,
         (dir / ".coverage.g1").string(), (dir / ".coverage.g2").string()},
        dir / "whole");
    run({"/usr/bin/python3", "-B", "-m", "coverage", "xml", "--data-file=" + data, "-o",
         (dir / "reference.xml").string()},
        dir / "whole");
  }
  static void TearDownTestSuite() { temp_.reset(); }

  static std::unique_ptr<util::TempDir> temp_;
};

std::unique_ptr<util::TempDir> CoberturaRealTest::temp_;

TEST_F(CoberturaRealTest, MergingThePartsEqualsCoverageCombine) {
  const std::filesystem::path& dir = temp_->path();
  std::filesystem::path out = dir / "merged.xml";
  CoberturaResult result = merge_cobertura({dir / "g1.xml", dir / "g2.xml"}, out);
  EXPECT_TRUE(result.problems.empty());
  ReportView merged = view(out);
  ReportView reference = view(dir / "reference.xml");
  EXPECT_EQ(merged.root, reference.root);
  EXPECT_EQ(merged.packages, reference.packages);
  EXPECT_EQ(merged.classes, reference.classes);
  EXPECT_EQ(merged.lines, reference.lines);
  // The parts really differ, or the comparison above proves nothing.
  EXPECT_NE(view(dir / "g1.xml").lines, reference.lines);
  EXPECT_NE(view(dir / "g2.xml").lines, reference.lines);
  EXPECT_EQ(std::to_string(result.lines_valid), reference.root["lines-valid"]);
  EXPECT_EQ(std::to_string(result.branches_covered), reference.root["branches-covered"]);
  EXPECT_EQ(result.files, reference.classes.size());
  // One source: the first part's checkout.
  pugi::xml_document doc = parse(out);
  pugi::xml_node sources = doc.child("coverage").child("sources");
  EXPECT_EQ(std::distance(sources.children("source").begin(), sources.children("source").end()), 1);
  EXPECT_EQ(std::string(sources.child("source").text().get()), (dir / "g1/shop").string());
}

TEST_F(CoberturaRealTest, OrderOfInputsDoesNotMatter) {
  const std::filesystem::path& dir = temp_->path();
  merge_cobertura({dir / "g1.xml", dir / "g2.xml"}, dir / "a.xml");
  merge_cobertura({dir / "g2.xml", dir / "g1.xml"}, dir / "b.xml");
  EXPECT_EQ(view(dir / "a.xml").lines, view(dir / "b.xml").lines);
  EXPECT_EQ(view(dir / "a.xml").root, view(dir / "b.xml").root);
}

TEST_F(CoberturaRealTest, HitsAreSummed) {
  const std::filesystem::path& dir = temp_->path();
  std::filesystem::path out = dir / "twice.xml";
  merge_cobertura({dir / "g1.xml", dir / "g1.xml"}, out);
  pugi::xml_document doc = parse(out);
  pugi::xml_node line = doc.select_node("//class[@filename='cart.py']/lines/line[@number='1']").node();
  EXPECT_STREQ(line.attribute("hits").value(), "2");
  // Merging a report with itself changes no count.
  EXPECT_EQ(view(out).root, view(dir / "g1.xml").root);
}

TEST_F(CoberturaRealTest, ExplicitSourceIsTheResultsSource) {
  const std::filesystem::path& dir = temp_->path();
  std::filesystem::path out = dir / "sourced.xml";
  merge_cobertura({dir / "g1.xml", dir / "g2.xml"}, out, std::filesystem::path("/app/shop"));
  pugi::xml_document doc = parse(out);
  EXPECT_STREQ(doc.child("coverage").child("sources").child("source").text().get(), "/app/shop");
  EXPECT_EQ(view(out).lines, view(dir / "reference.xml").lines);
}

TEST(CoberturaRate, IsCoveragePys) {
  EXPECT_EQ(coverage_rate(0, 0), "1");
  EXPECT_EQ(coverage_rate(3, 3), "1");
  EXPECT_EQ(coverage_rate(0, 7), "0");
  EXPECT_EQ(coverage_rate(1, 2), "0.5");
  EXPECT_EQ(coverage_rate(2, 3), "0.6667");
  EXPECT_EQ(coverage_rate(18, 31), "0.5806");
  EXPECT_EQ(coverage_rate(1, 100000), "1e-05");
}

class CoberturaTest : public ::testing::Test {
 protected:
  util::TempDir temp_{"cobertura-unit-"};
  std::filesystem::path out_ = temp_.path() / "merged.xml";
};

// Producers other than coverage.py (gcovr, Java Cobertura) write a DOCTYPE naming the DTD, methods, hit
// counts, and condition-coverage without missing-branches.
TEST_F(CoberturaTest, OtherProducersWithoutMissingBranchesTakeTheLargerCount) {
  CoberturaResult result = merge_cobertura({kData / "gcovr/part-1.xml", kData / "gcovr/part-2.xml"}, out_);
  ASSERT_TRUE(result.problems.empty()) << result.problems.front().message;
  pugi::xml_document doc = parse(out_);
  pugi::xml_node klass = doc.select_node("//class[@filename='src/cart.cpp']").node();
  ASSERT_TRUE(klass);
  pugi::xml_node line10 = klass.select_node("lines/line[@number='10']").node();
  EXPECT_STREQ(line10.attribute("hits").value(), "12");  // 5 + 7
  // 1/2 in one part, 1/2 in the other: which branch each took is not written, so 1/2 is all we know.
  EXPECT_STREQ(line10.attribute("condition-coverage").value(), "50% (1/2)");
  EXPECT_FALSE(line10.attribute("missing-branches"));
  pugi::xml_node line12 = klass.select_node("lines/line[@number='12']").node();
  EXPECT_STREQ(line12.attribute("condition-coverage").value(), "100% (4/4)");
  // A line only the second part has.
  EXPECT_STREQ(klass.select_node("lines/line[@number='20']").node().attribute("hits").value(), "3");
  // Methods merged by name and signature, their lines too.
  pugi::xml_node method = klass.select_node("methods/method[@name='total']").node();
  EXPECT_STREQ(method.select_node("lines/line[@number='10']").node().attribute("hits").value(), "12");
  EXPECT_EQ(std::distance(klass.child("methods").children("method").begin(),
                          klass.child("methods").children("method").end()),
            2);
  // Counts: lines 10, 11, 12, 20 (11 never hit); branches 2 + 4.
  EXPECT_STREQ(doc.child("coverage").attribute("lines-valid").value(), "4");
  EXPECT_STREQ(doc.child("coverage").attribute("lines-covered").value(), "3");
  EXPECT_STREQ(doc.child("coverage").attribute("line-rate").value(), "0.75");
  EXPECT_STREQ(doc.child("coverage").attribute("branches-valid").value(), "6");
  EXPECT_STREQ(doc.child("coverage").attribute("branches-covered").value(), "5");
  EXPECT_STREQ(doc.child("coverage").attribute("branch-rate").value(), "0.8333");
  EXPECT_STREQ(klass.attribute("name").value(), "cart_cpp");
}

TEST_F(CoberturaTest, MissingBranchesAreIntersected) {
  std::string head = "<coverage version=\"6.5.0\" branch-rate=\"0.5\"><sources><source>/ci/";
  std::string tail =
      "/src</source></sources><packages><package name=\".\"><classes><class name=\"a.py\" filename=\"a.py\">"
      "<lines><line number=\"3\" hits=\"1\" branch=\"true\" condition-coverage=\"33% (1/3)\" "
      "missing-branches=\"";
  std::filesystem::path a = temp_.path() / "a.xml";
  std::filesystem::path b = temp_.path() / "b.xml";
  write(a, head + "g1" + tail + "4,exit\"/></lines></class></classes></package></packages></coverage>");
  write(b, head + "g2" + tail + "exit,7\"/></lines></class></classes></package></packages></coverage>");
  merge_cobertura({a, b}, out_);
  pugi::xml_document doc = parse(out_);
  pugi::xml_node line = doc.select_node("//line[@number='3']").node();
  EXPECT_STREQ(line.attribute("condition-coverage").value(), "66% (2/3)");
  EXPECT_STREQ(line.attribute("missing-branches").value(), "exit");
  EXPECT_STREQ(doc.child("coverage").attribute("branch-rate").value(), "0.6667");
}

TEST_F(CoberturaTest, SeveralSourcesAreReRelativisedToTheirCommonRoot) {
  // Two checkouts, each with two source folders; the files exist so that each class finds its source.
  for (const char* checkout : {"g1", "g2"}) {
    write(temp_.path() / checkout / "src/app/views.py", "");
    write(temp_.path() / checkout / "lib/util/text.py", "");
  }
  auto report = [&](const char* checkout, const char* hits) {
    std::string root = (temp_.path() / checkout).string();
    std::filesystem::path path = temp_.path() / (std::string(checkout) + ".xml");
    write(path,
          "<coverage version=\"6.5.0\" branch-rate=\"0\"><sources><source>" + root + "/src</source><source>" +
              root +
              "/lib</source></sources><packages>"
              "<package name=\"app\"><classes><class name=\"views.py\" filename=\"app/views.py\"><lines>"
              "<line number=\"1\" hits=\"" +
              hits +
              "\"/></lines></class></classes></package>"
              "<package name=\"util\"><classes><class name=\"text.py\" filename=\"util/text.py\"><lines>"
              "<line number=\"2\" hits=\"1\"/></lines></class></classes></package></packages></coverage>");
    return path;
  };
  std::filesystem::path g1 = report("g1", "0");
  std::filesystem::path g2 = report("g2", "1");
  CoberturaResult result = merge_cobertura({g1, g2}, out_);
  EXPECT_EQ(result.files, 2u);
  EXPECT_EQ(result.lines_valid, 2u);
  EXPECT_EQ(result.lines_covered, 2u);
  ReportView merged = view(out_);
  EXPECT_EQ(merged.classes["src/app/views.py"], "views.py src.app 1 0");
  EXPECT_EQ(merged.classes["lib/util/text.py"], "text.py lib.util 1 0");
  pugi::xml_document doc = parse(out_);
  EXPECT_EQ(std::string(doc.child("coverage").child("sources").child("source").text().get()),
            (temp_.path() / "g1").string());
}

TEST_F(CoberturaTest, BadInputsAreRecordedAndTheGoodOnesMerged) {
  std::filesystem::path not_a_number = temp_.path() / "nan.xml";
  write(not_a_number,
        "<coverage>\n<packages><package name=\".\"><classes><class name=\"a\" filename=\"a.py\"><lines>\n"
        "  <line number=\"x\" hits=\"1\"/></lines></class></classes></package></packages></coverage>");
  std::filesystem::path entities = temp_.path() / "entities.xml";
  write(entities, "<!DOCTYPE coverage [<!ENTITY a \"aaaa\">]>\n<coverage/>");
  CoberturaResult result = merge_cobertura({kData / "gcovr/part-1.xml", kData / "bad/truncated.xml",
                                            kData / "bad/junit.xml", not_a_number, entities},
                                           out_);
  ASSERT_EQ(result.problems.size(), 4u);
  EXPECT_THAT(result.problems[0].message, HasSubstr("truncated.xml:"));
  EXPECT_THAT(result.problems[1].message, HasSubstr("junit.xml:2:1: root element is <testsuites>"));
  EXPECT_EQ(result.problems[2].message,
            not_a_number.string() + ":3:3: <line> number=\"x\" is not a whole number");
  EXPECT_EQ(
      result.problems[3].message,
      entities.string() +
          ":1:1: DOCTYPE refused: a report needs no DTD, and entities declared in one are never expanded");
  EXPECT_EQ(result.files, 1u);
  EXPECT_EQ(view(out_).lines, view(kData / "gcovr/part-1.xml").lines);
}

TEST_F(CoberturaTest, NoInputGivesAnEmptyReport) {
  CoberturaResult result = merge_cobertura({}, out_);
  EXPECT_EQ(result.files, 0u);
  pugi::xml_document doc = parse(out_);
  EXPECT_STREQ(doc.child("coverage").attribute("line-rate").value(), "1");
  EXPECT_STREQ(doc.child("coverage").attribute("lines-valid").value(), "0");
}

}  // namespace
}  // namespace testfleet::reports
