#include "reports/cobertura.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "reports/xml_input.hpp"
#include "util/error.hpp"

namespace testfleet::reports {

namespace {

struct Line {
  std::uint64_t hits = 0;
  bool branch = false;
  std::uint32_t total = 0;    // branches out of this line
  std::uint32_t covered = 0;  // of them taken
  // Whether `missing` is the whole truth: coverage.py writes missing-branches whenever one is missing, so
  // a line without it is known only when every branch was taken.
  bool missing_known = true;
  std::vector<std::string> missing;
};

using Lines = std::map<std::uint32_t, Line>;

struct Method {
  std::string name;
  std::string signature;
  Lines lines;
};

struct Class {
  std::string filename;  // relative to the result's source
  std::string name;
  std::string package;
  std::vector<Method> methods;
  Lines lines;
};

struct Counts {
  std::size_t lines = 0;
  std::size_t lines_hit = 0;
  std::size_t branches = 0;
  std::size_t branches_hit = 0;

  void add(const Counts& other) {
    lines += other.lines;
    lines_hit += other.lines_hit;
    branches += other.branches;
    branches_hit += other.branches_hit;
  }
};

Counts count(const Lines& lines) {
  Counts counts;
  for (const auto& [number, line] : lines) {
    ++counts.lines;
    if (line.hits > 0) ++counts.lines_hit;
    if (line.branch) {
      counts.branches += line.total;
      counts.branches_hit += line.covered;
    }
  }
  return counts;
}

// One input, read whole before anything of it is merged so that a refused file adds nothing.
struct Report {
  std::filesystem::path root;
  std::string version;
  std::uint64_t timestamp = 0;
  bool has_arcs = false;
  std::vector<Class> classes;
};

template <typename Integer>
std::optional<Integer> parse_integer(std::string_view text) {
  Integer value{};
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

template <typename Integer>
Integer required_integer(const XmlInput& input, pugi::xml_node node, const char* attribute) {
  std::string_view text = node.attribute(attribute).value();
  std::optional<Integer> value = parse_integer<Integer>(text);
  if (!value) {
    input.fail(node, fmt::format("<{}> {}=\"{}\" is not a whole number", node.name(), attribute, text));
  }
  return *value;
}

// "50% (1/2)" -> {1, 2}
std::optional<std::pair<std::uint32_t, std::uint32_t>> parse_condition_coverage(std::string_view text) {
  std::size_t open = text.find('(');
  std::size_t slash = text.find('/', open);
  std::size_t close = text.find(')', slash);
  if (open == std::string_view::npos || slash == std::string_view::npos || close == std::string_view::npos) {
    return std::nullopt;
  }
  std::optional<std::uint32_t> covered =
      parse_integer<std::uint32_t>(text.substr(open + 1, slash - open - 1));
  std::optional<std::uint32_t> total =
      parse_integer<std::uint32_t>(text.substr(slash + 1, close - slash - 1));
  if (!covered || !total || *covered > *total) return std::nullopt;
  return std::make_pair(*covered, *total);
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> parts;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (!part.empty()) parts.emplace_back(part);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return parts;
}

Lines read_lines(const XmlInput& input, pugi::xml_node lines_element) {
  Lines lines;
  for (pugi::xml_node element : lines_element.children("line")) {
    auto number = required_integer<std::uint32_t>(input, element, "number");
    Line line;
    line.hits = required_integer<std::uint64_t>(input, element, "hits");
    if (std::string_view(element.attribute("branch").value()) == "true") {
      pugi::xml_attribute condition = element.attribute("condition-coverage");
      std::optional<std::pair<std::uint32_t, std::uint32_t>> parsed =
          parse_condition_coverage(condition.value());
      if (!parsed) {
        input.fail(element, fmt::format("<line> condition-coverage=\"{}\" is not \"P% (covered/total)\"",
                                        condition.value()));
      }
      line.branch = true;
      line.covered = parsed->first;
      line.total = parsed->second;
      pugi::xml_attribute missing = element.attribute("missing-branches");
      if (missing) {
        line.missing = split_list(missing.value());
      } else {
        line.missing_known = line.covered == line.total;
      }
    }
    // A line written twice (some producers do, per class and method) is one line.
    auto [it, inserted] = lines.emplace(number, line);
    if (!inserted) it->second.hits = std::max(it->second.hits, line.hits);
  }
  return lines;
}

std::filesystem::path common_ancestor(const std::vector<std::filesystem::path>& paths) {
  std::filesystem::path common = paths.front();
  for (const std::filesystem::path& path : paths) {
    std::filesystem::path prefix;
    auto a = common.begin();
    auto b = path.begin();
    for (; a != common.end() && b != path.end() && *a == *b; ++a, ++b) prefix /= *a;
    common = prefix;
  }
  return common;
}

std::filesystem::path normal(const std::filesystem::path& path) {
  std::filesystem::path result = path.lexically_normal();
  // "/a/b/" and "/a/b" are one root.
  if (!result.has_filename() && result.has_parent_path() && result != result.root_path()) {
    result = result.parent_path();
  }
  return result;
}

std::string package_of(const std::string& filename) {
  std::string directory = std::filesystem::path(filename).parent_path().string();
  if (directory.empty()) return ".";
  std::replace(directory.begin(), directory.end(), '/', '.');
  return directory;
}

Report read_report(const std::filesystem::path& path) {
  XmlInput input(path, {"coverage"}, Doctype::kAllowExternal);
  pugi::xml_node coverage = input.root();
  Report report;
  report.version = coverage.attribute("version").value();
  report.timestamp = parse_integer<std::uint64_t>(coverage.attribute("timestamp").value()).value_or(0);
  // coverage.py writes branch-rate="0" only when it measured no branches at all.
  std::string_view branch_rate = coverage.attribute("branch-rate").value();
  std::string_view branches_valid = coverage.attribute("branches-valid").value();
  report.has_arcs =
      (!branch_rate.empty() && branch_rate != "0") || (!branches_valid.empty() && branches_valid != "0");

  std::vector<std::filesystem::path> sources;
  for (pugi::xml_node source : coverage.child("sources").children("source")) {
    std::string_view text = source.text().get();
    while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\t')) {
      text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t')) {
      text.remove_suffix(1);
    }
    if (!text.empty()) sources.push_back(normal(std::filesystem::path(text)));
  }
  if (!sources.empty()) report.root = sources.size() == 1 ? sources.front() : common_ancestor(sources);

  for (pugi::xml_node package : coverage.child("packages").children("package")) {
    for (pugi::xml_node element : package.child("classes").children("class")) {
      std::string written = element.attribute("filename").value();
      if (written.empty()) input.fail(element, "<class> without a filename");
      Class klass;
      klass.name = element.attribute("name").value();
      std::filesystem::path filename(written);
      std::filesystem::path absolute = filename;
      if (filename.is_relative() && !sources.empty()) {
        const std::filesystem::path* base = &sources.front();
        if (sources.size() > 1) {
          for (const std::filesystem::path& source : sources) {
            std::error_code ec;
            if (std::filesystem::exists(source / filename, ec)) {
              base = &source;
              break;
            }
          }
        }
        absolute = *base / filename;
      }
      absolute = absolute.lexically_normal();
      std::filesystem::path relative =
          report.root.empty() ? absolute : absolute.lexically_relative(report.root);
      klass.filename = relative.empty() || *relative.begin() == ".." ? absolute.string() : relative.string();
      klass.package =
          klass.filename == written ? package.attribute("name").value() : package_of(klass.filename);
      klass.lines = read_lines(input, element.child("lines"));
      for (pugi::xml_node method : element.child("methods").children("method")) {
        klass.methods.push_back({method.attribute("name").value(), method.attribute("signature").value(),
                                 read_lines(input, method.child("lines"))});
      }
      report.classes.push_back(std::move(klass));
    }
  }
  return report;
}

void merge_line(Line& into, const Line& from) {
  into.hits = into.hits > std::numeric_limits<std::uint64_t>::max() - from.hits
                  ? std::numeric_limits<std::uint64_t>::max()
                  : into.hits + from.hits;
  if (!from.branch) return;
  if (!into.branch) {
    into.branch = true;
    into.total = from.total;
    into.covered = from.covered;
    into.missing_known = from.missing_known;
    into.missing = from.missing;
    return;
  }
  if (into.total == from.total && into.missing_known && from.missing_known) {
    // A branch is missing in the merge only if every report missed it.
    std::vector<std::string> both;
    for (const std::string& branch : into.missing) {
      if (std::find(from.missing.begin(), from.missing.end(), branch) != from.missing.end()) {
        both.push_back(branch);
      }
    }
    into.missing = std::move(both);
    into.covered =
        into.total - static_cast<std::uint32_t>(std::min<std::size_t>(into.missing.size(), into.total));
    return;
  }
  // Without the missing branches of both sides, the union of what was taken is unknown: the larger count
  // is the only sound claim.
  into.total = std::max(into.total, from.total);
  into.covered = std::max(into.covered, from.covered);
  into.missing_known = into.covered == into.total;
  into.missing.clear();
}

void merge_lines(Lines& into, const Lines& from) {
  for (const auto& [number, line] : from) {
    auto [it, inserted] = into.emplace(number, line);
    if (!inserted) merge_line(it->second, line);
  }
}

void append_attribute(std::string& out, std::string_view name, std::string_view value) {
  out += ' ';
  out += name;
  out += "=\"";
  append_escaped(out, value, true);
  out += '"';
}

void write_lines(std::string& out, const Lines& lines, std::string_view indent) {
  if (lines.empty()) {
    out += fmt::format("{}<lines/>\n", indent);
    return;
  }
  out += fmt::format("{}<lines>\n", indent);
  for (const auto& [number, line] : lines) {
    out += fmt::format("{}\t<line number=\"{}\" hits=\"{}\"", indent, number, line.hits);
    if (line.branch) {
      std::uint32_t percent =
          line.total == 0 ? 100 : static_cast<std::uint32_t>(100ull * line.covered / line.total);
      out += fmt::format(" branch=\"true\" condition-coverage=\"{}% ({}/{})\"", percent, line.covered,
                         line.total);
      if (line.missing_known && !line.missing.empty()) {
        std::string joined;
        for (const std::string& branch : line.missing) {
          if (!joined.empty()) joined += ',';
          joined += branch;
        }
        append_attribute(out, "missing-branches", joined);
      }
    }
    out += "/>\n";
  }
  out += fmt::format("{}</lines>\n", indent);
}

std::string branch_rate(const Counts& counts, bool has_arcs) {
  return has_arcs ? coverage_rate(counts.branches_hit, counts.branches) : "0";
}

}  // namespace

std::string coverage_rate(std::size_t hit, std::size_t total) {
  if (total == 0) return "1";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", static_cast<double>(hit) / static_cast<double>(total));
  return buffer;
}

CoberturaResult merge_cobertura(const std::vector<std::filesystem::path>& inputs,
                                const std::filesystem::path& out,
                                const std::optional<std::filesystem::path>& source) {
  CoberturaResult result;
  std::unordered_map<std::string, Class> classes;
  std::optional<std::filesystem::path> root = source;
  std::string version;
  std::uint64_t timestamp = 0;
  bool has_arcs = false;
  std::size_t merged_inputs = 0;

  for (const std::filesystem::path& path : inputs) {
    Report report;
    try {
      report = read_report(path);
    } catch (const UsageError& error) {
      result.problems.push_back({path, error.what()});
      continue;
    }
    ++merged_inputs;
    if (!root && !report.root.empty()) root = report.root;
    if (version.empty()) version = report.version;
    timestamp = std::max(timestamp, report.timestamp);
    has_arcs = has_arcs || report.has_arcs;
    for (Class& klass : report.classes) {
      std::string key = klass.filename;
      key += '\0';
      key += klass.name;
      auto [it, inserted] = classes.try_emplace(std::move(key));
      Class& merged = it->second;
      if (inserted) {
        merged = std::move(klass);
        continue;
      }
      merge_lines(merged.lines, klass.lines);
      for (Method& method : klass.methods) {
        auto same = std::find_if(merged.methods.begin(), merged.methods.end(), [&](const Method& m) {
          return m.name == method.name && m.signature == method.signature;
        });
        if (same == merged.methods.end()) {
          merged.methods.push_back(std::move(method));
        } else {
          merge_lines(same->lines, method.lines);
        }
      }
    }
  }

  // Packages by name, classes by filename, as coverage.py orders them.
  std::map<std::string, std::vector<const Class*>> packages;
  for (const auto& [key, klass] : classes) packages[klass.package].push_back(&klass);
  Counts total;
  std::map<const Class*, Counts> class_counts;
  std::map<std::string, Counts> package_counts;
  for (auto& [name, members] : packages) {
    std::sort(members.begin(), members.end(), [](const Class* a, const Class* b) {
      return std::tie(a->filename, a->name) < std::tie(b->filename, b->name);
    });
    for (const Class* klass : members) {
      Counts counts = count(klass->lines);
      class_counts[klass] = counts;
      package_counts[name].add(counts);
    }
    total.add(package_counts[name]);
  }

  ReportWriter writer(out);
  std::string& xml = writer.buffer();
  xml += "<?xml version=\"1.0\" ?>\n<coverage";
  append_attribute(xml, "version", version);
  append_attribute(xml, "timestamp", std::to_string(timestamp));
  append_attribute(xml, "lines-valid", std::to_string(total.lines));
  append_attribute(xml, "lines-covered", std::to_string(total.lines_hit));
  append_attribute(xml, "line-rate", coverage_rate(total.lines_hit, total.lines));
  append_attribute(xml, "branches-covered", std::to_string(total.branches_hit));
  append_attribute(xml, "branches-valid", std::to_string(total.branches));
  append_attribute(xml, "branch-rate", branch_rate(total, has_arcs));
  xml += " complexity=\"0\">\n";
  xml += fmt::format("\t<!-- Merged by testfleet from {} reports -->\n", merged_inputs);
  if (root && !root->empty()) {
    xml += "\t<sources>\n\t\t<source>";
    append_escaped(xml, root->string(), false);
    xml += "</source>\n\t</sources>\n";
  } else {
    xml += "\t<sources/>\n";
  }
  xml += "\t<packages>\n";
  for (const auto& [name, members] : packages) {
    const Counts& counts = package_counts[name];
    xml += "\t\t<package";
    append_attribute(xml, "name", name);
    append_attribute(xml, "line-rate", coverage_rate(counts.lines_hit, counts.lines));
    append_attribute(xml, "branch-rate", branch_rate(counts, has_arcs));
    xml += " complexity=\"0\">\n\t\t\t<classes>\n";
    for (const Class* klass : members) {
      const Counts& own = class_counts[klass];
      xml += "\t\t\t\t<class";
      append_attribute(xml, "name", klass->name);
      append_attribute(xml, "filename", klass->filename);
      xml += " complexity=\"0\"";
      append_attribute(xml, "line-rate", coverage_rate(own.lines_hit, own.lines));
      append_attribute(xml, "branch-rate", branch_rate(own, has_arcs));
      xml += ">\n";
      if (klass->methods.empty()) {
        xml += "\t\t\t\t\t<methods/>\n";
      } else {
        xml += "\t\t\t\t\t<methods>\n";
        for (const Method& method : klass->methods) {
          Counts method_counts = count(method.lines);
          xml += "\t\t\t\t\t\t<method";
          append_attribute(xml, "name", method.name);
          append_attribute(xml, "signature", method.signature);
          append_attribute(xml, "line-rate", coverage_rate(method_counts.lines_hit, method_counts.lines));
          append_attribute(xml, "branch-rate", branch_rate(method_counts, has_arcs));
          xml += " complexity=\"0\">\n";
          write_lines(xml, method.lines, "\t\t\t\t\t\t\t");
          xml += "\t\t\t\t\t\t</method>\n";
        }
        xml += "\t\t\t\t\t</methods>\n";
      }
      write_lines(xml, klass->lines, "\t\t\t\t\t");
      xml += "\t\t\t\t</class>\n";
      writer.maybe_flush();
    }
    xml += "\t\t\t</classes>\n\t\t</package>\n";
  }
  xml += "\t</packages>\n</coverage>\n";
  writer.commit();

  result.files = classes.size();
  result.lines_valid = total.lines;
  result.lines_covered = total.lines_hit;
  result.branches_valid = total.branches;
  result.branches_covered = total.branches_hit;
  return result;
}

}  // namespace testfleet::reports
