#include "reports/lcov.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <utility>

#include "reports/xml_input.hpp"
#include "util/error.hpp"
#include "util/files.hpp"

namespace testfleet::reports {

namespace {

struct LineCount {
  std::uint64_t count = 0;
  std::string checksum;
};

// Blocks and branches are compared as numbers when both are, so that "10" sorts after "9" as lcov sorts.
struct TextOrNumber {
  bool operator()(const std::string& a, const std::string& b) const {
    bool a_number =
        !a.empty() && std::all_of(a.begin(), a.end(), [](char c) { return c >= '0' && c <= '9'; });
    bool b_number =
        !b.empty() && std::all_of(b.begin(), b.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (a_number && b_number && a.size() != b.size()) return a.size() < b.size();
    return a < b;
  }
};

struct BranchKey {
  std::uint32_t line;
  std::string block;
  std::string branch;

  bool operator<(const BranchKey& other) const {
    TextOrNumber less;
    if (line != other.line) return line < other.line;
    if (block != other.block) return less(block, other.block);
    return less(branch, other.branch);
  }
};

struct Function {
  std::uint32_t start = 0;  // 0: never declared (an FNDA without FN)
  std::optional<std::uint32_t> end;
  std::uint64_t count = 0;
};

struct Record {
  std::map<std::uint32_t, LineCount> lines;
  std::map<BranchKey, std::optional<std::uint64_t>> branches;  // nullopt: "-"
  std::map<std::string, Function> functions;
};

struct Tracefile {
  std::map<std::pair<std::string, std::string>, Record> records;  // (test name, source file)
  bool located_functions = false;                                 // FNL/FNA rather than FN/FNDA
};

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > std::numeric_limits<std::uint64_t>::max() - b ? std::numeric_limits<std::uint64_t>::max()
                                                           : a + b;
}

class Parser {
 public:
  explicit Parser(const std::filesystem::path& path) : path_(path) {}

  Tracefile parse() {
    std::error_code ec;
    std::uintmax_t size = std::filesystem::file_size(path_, ec);
    if (ec) throw UsageError(fmt::format("{}: cannot read: {}", path_.string(), ec.message()));
    if (size > kMaxXmlInputBytes) {
      throw UsageError(fmt::format("{}: {} bytes, larger than the {} MiB limit for a report", path_.string(),
                                   size, kMaxXmlInputBytes >> 20));
    }
    std::string text = util::read_file(path_);
    Tracefile tracefile;
    std::string test_name;
    Record* record = nullptr;
    std::size_t record_line = 0;
    std::map<std::uint32_t, std::pair<std::uint32_t, std::optional<std::uint32_t>>> locations;  // FNL index
    std::string_view rest = text;
    while (!rest.empty()) {
      ++line_number_;
      std::size_t newline = rest.find('\n');
      std::string_view line = rest.substr(0, newline);
      rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) continue;
      std::size_t colon = line.find(':');
      std::string_view tag = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);

      if (tag == "end_of_record") {
        if (record == nullptr) fail("end_of_record without SF");
        record = nullptr;
        continue;
      }
      if (tag == "TN") {
        test_name = std::string(value);
        continue;
      }
      if (tag == "SF") {
        if (record != nullptr)
          fail(fmt::format("SF before the end_of_record of the record at line {}", record_line));
        if (value.empty()) fail("SF without a path");
        record = &tracefile.records[{test_name, std::string(value)}];
        record_line = line_number_;
        locations.clear();
        continue;
      }
      // Every other tag belongs to a record; tags we do not merge (VER, the LF/LH family that we
      // recompute, MC/DC data that no consumer of ours reads) are dropped.
      if (tag != "DA" && tag != "BRDA" && tag != "FN" && tag != "FNDA" && tag != "FNL" && tag != "FNA")
        continue;
      if (record == nullptr) fail(fmt::format("{} outside a record (no SF before it)", tag));

      if (tag == "DA") {
        // DA:line,count[,checksum]
        std::vector<std::string_view> fields = split(value, 3);
        if (fields.size() < 2) fail("DA needs line,count");
        std::uint32_t number = number_of<std::uint32_t>(fields[0], "line number");
        std::uint64_t count = count_of(fields[1]);
        std::string_view checksum = fields.size() == 3 ? fields[2] : std::string_view();
        auto [it, inserted] = record->lines.try_emplace(number);
        it->second.count = saturating_add(it->second.count, count);
        if (it->second.checksum.empty()) it->second.checksum = std::string(checksum);
      } else if (tag == "BRDA") {
        // BRDA:line,block,branch,taken where branch may itself hold commas.
        std::size_t first = value.find(',');
        std::size_t second = first == std::string_view::npos ? first : value.find(',', first + 1);
        std::size_t last = value.rfind(',');
        if (second == std::string_view::npos || last <= second) fail("BRDA needs line,block,branch,taken");
        BranchKey key{number_of<std::uint32_t>(value.substr(0, first), "line number"),
                      std::string(value.substr(first + 1, second - first - 1)),
                      std::string(value.substr(second + 1, last - second - 1))};
        std::string_view taken = value.substr(last + 1);
        std::optional<std::uint64_t> count;
        if (taken != "-") count = count_of(taken);
        auto [it, inserted] = record->branches.try_emplace(std::move(key), count);
        if (!inserted && count) it->second = saturating_add(it->second.value_or(0), *count);
      } else if (tag == "FN") {
        // FN:start[,end],name
        std::size_t first = value.find(',');
        if (first == std::string_view::npos) fail("FN needs start,name");
        std::uint32_t start = number_of<std::uint32_t>(value.substr(0, first), "line number");
        std::string_view after = value.substr(first + 1);
        std::optional<std::uint32_t> end;
        std::size_t second = after.find(',');
        if (second != std::string_view::npos && is_number(after.substr(0, second))) {
          end = number_of<std::uint32_t>(after.substr(0, second), "end line");
          after.remove_prefix(second + 1);
        }
        declare(*record, after, start, end);
      } else if (tag == "FNDA") {
        // FNDA:count,name
        std::size_t first = value.find(',');
        if (first == std::string_view::npos) fail("FNDA needs count,name");
        Function& function = record->functions[std::string(value.substr(first + 1))];
        function.count = saturating_add(function.count, count_of(value.substr(0, first)));
      } else if (tag == "FNL") {
        // FNL:index,start[,end]
        tracefile.located_functions = true;
        std::vector<std::string_view> fields = split(value, 3);
        if (fields.size() < 2) fail("FNL needs index,start");
        std::optional<std::uint32_t> end;
        if (fields.size() == 3) end = number_of<std::uint32_t>(fields[2], "end line");
        locations[number_of<std::uint32_t>(fields[0], "function index")] = {
            number_of<std::uint32_t>(fields[1], "line number"), end};
      } else {
        // FNA:index,count,name
        tracefile.located_functions = true;
        std::vector<std::string_view> fields = split(value, 3);
        if (fields.size() < 3) fail("FNA needs index,count,name");
        auto location = locations.find(number_of<std::uint32_t>(fields[0], "function index"));
        if (location == locations.end())
          fail(fmt::format("FNA for index {} that no FNL declared", fields[0]));
        declare(*record, fields[2], location->second.first, location->second.second);
        Function& function = record->functions[std::string(fields[2])];
        function.count = saturating_add(function.count, count_of(fields[1]));
      }
    }
    if (record != nullptr) {
      line_number_ = record_line;
      fail("truncated: the record that starts here has no end_of_record");
    }
    return tracefile;
  }

 private:
  [[noreturn]] void fail(std::string_view message) const {
    throw UsageError(fmt::format("{}:{}: {}", path_.string(), line_number_, message));
  }

  static bool is_number(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  }

  template <typename Integer>
  Integer number_of(std::string_view text, std::string_view what) const {
    Integer value{};
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
      fail(fmt::format("{} \"{}\" is not a whole number", what, text));
    }
    return value;
  }

  // gcov writes counts past 2^63 as they are; a negative one is a broken producer.
  std::uint64_t count_of(std::string_view text) const { return number_of<std::uint64_t>(text, "count"); }

  // Splits at the first `parts - 1` commas: the last field keeps its commas (names, checksums).
  static std::vector<std::string_view> split(std::string_view text, std::size_t parts) {
    std::vector<std::string_view> fields;
    while (fields.size() + 1 < parts) {
      std::size_t comma = text.find(',');
      if (comma == std::string_view::npos) break;
      fields.push_back(text.substr(0, comma));
      text.remove_prefix(comma + 1);
    }
    fields.push_back(text);
    return fields;
  }

  static void declare(Record& record, std::string_view name, std::uint32_t start,
                      std::optional<std::uint32_t> end) {
    Function& function = record.functions[std::string(name)];
    if (function.start == 0) {
      function.start = start;
      function.end = end;
    }
  }

  const std::filesystem::path& path_;
  std::size_t line_number_ = 0;
};

struct Summary {
  std::size_t lines_found = 0, lines_hit = 0, branches_found = 0, branches_hit = 0, functions_found = 0,
              functions_hit = 0;
};

void write_record(std::string& out, const std::string& test_name, const std::string& source,
                  const Record& record, bool located_functions, Summary& summary) {
  out += fmt::format("TN:{}\nSF:{}\n", test_name, source);
  std::size_t functions_found = 0;
  std::size_t functions_hit = 0;
  if (located_functions) {
    // Aliases (names at one location) share one index and count as one function.
    std::map<std::pair<std::uint32_t, std::optional<std::uint32_t>>, std::vector<const std::string*>> located;
    for (const auto& [name, function] : record.functions)
      located[{function.start, function.end}].push_back(&name);
    std::size_t index = 0;
    for (const auto& [location, names] : located) {
      out += fmt::format("FNL:{},{}", index, location.first);
      if (location.second) out += fmt::format(",{}", *location.second);
      out += '\n';
      bool hit = false;
      for (const std::string* name : names) {
        std::uint64_t count = record.functions.at(*name).count;
        hit = hit || count > 0;
        out += fmt::format("FNA:{},{},{}\n", index, count, *name);
      }
      ++functions_found;
      if (hit) ++functions_hit;
      ++index;
    }
  } else {
    std::vector<std::pair<const std::string*, const Function*>> ordered;
    for (const auto& [name, function] : record.functions) ordered.emplace_back(&name, &function);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const auto& a, const auto& b) { return a.second->start < b.second->start; });
    for (const auto& [name, function] : ordered) {
      if (function->start == 0) continue;
      out += fmt::format("FN:{}", function->start);
      if (function->end) out += fmt::format(",{}", *function->end);
      out += fmt::format(",{}\n", *name);
    }
    for (const auto& [name, function] : ordered) {
      out += fmt::format("FNDA:{},{}\n", function->count, *name);
      ++functions_found;
      if (function->count > 0) ++functions_hit;
    }
  }
  out += fmt::format("FNF:{}\nFNH:{}\n", functions_found, functions_hit);

  std::size_t branches_hit = 0;
  for (const auto& [key, taken] : record.branches) {
    out += fmt::format("BRDA:{},{},{},", key.line, key.block, key.branch);
    if (taken) {
      out += fmt::format("{}\n", *taken);
      if (*taken > 0) ++branches_hit;
    } else {
      out += "-\n";
    }
  }
  // As lcov: no branch summary for a file without branch data (it was not measured).
  if (!record.branches.empty()) out += fmt::format("BRF:{}\nBRH:{}\n", record.branches.size(), branches_hit);

  std::size_t lines_hit = 0;
  for (const auto& [number, line] : record.lines) {
    out += fmt::format("DA:{},{}", number, line.count);
    if (!line.checksum.empty()) out += fmt::format(",{}", line.checksum);
    out += '\n';
    if (line.count > 0) ++lines_hit;
  }
  out += fmt::format("LF:{}\nLH:{}\nend_of_record\n", record.lines.size(), lines_hit);

  summary.lines_found += record.lines.size();
  summary.lines_hit += lines_hit;
  summary.branches_found += record.branches.size();
  summary.branches_hit += branches_hit;
  summary.functions_found += functions_found;
  summary.functions_hit += functions_hit;
}

}  // namespace

LcovResult merge_lcov(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& out) {
  LcovResult result;
  Tracefile merged;
  for (const std::filesystem::path& path : inputs) {
    Tracefile tracefile;
    try {
      tracefile = Parser(path).parse();
    } catch (const UsageError& error) {
      result.problems.push_back({path, error.what()});
      continue;
    }
    merged.located_functions = merged.located_functions || tracefile.located_functions;
    for (auto& [key, record] : tracefile.records) {
      auto [it, inserted] = merged.records.try_emplace(key);
      Record& into = it->second;
      if (inserted) {
        into = std::move(record);
        continue;
      }
      for (const auto& [number, line] : record.lines) {
        auto [existing, added] = into.lines.try_emplace(number, line);
        if (added) continue;
        existing->second.count = saturating_add(existing->second.count, line.count);
        if (existing->second.checksum.empty()) {
          existing->second.checksum = line.checksum;
        } else if (!line.checksum.empty() && line.checksum != existing->second.checksum) {
          result.warnings.push_back(
              {path,
               fmt::format("{}: SF:{} DA:{}: checksum {} differs from {} in an earlier input (the source "
                           "changed between groups?); the earlier one is kept",
                           path.string(), key.second, number, line.checksum, existing->second.checksum)});
        }
      }
      for (const auto& [branch, taken] : record.branches) {
        auto [existing, added] = into.branches.try_emplace(branch, taken);
        if (!added && taken) existing->second = saturating_add(existing->second.value_or(0), *taken);
      }
      for (const auto& [name, function] : record.functions) {
        auto [existing, added] = into.functions.try_emplace(name, function);
        if (added) continue;
        existing->second.count = saturating_add(existing->second.count, function.count);
        if (existing->second.start == 0) {
          existing->second.start = function.start;
          existing->second.end = function.end;
        }
      }
    }
  }

  ReportWriter writer(out);
  Summary summary;
  for (const auto& [key, record] : merged.records) {
    write_record(writer.buffer(), key.first, key.second, record, merged.located_functions, summary);
    writer.maybe_flush();
  }
  writer.commit();
  result.records = merged.records.size();
  result.lines_found = summary.lines_found;
  result.lines_hit = summary.lines_hit;
  result.branches_found = summary.branches_found;
  result.branches_hit = summary.branches_hit;
  result.functions_found = summary.functions_found;
  result.functions_hit = summary.functions_hit;
  return result;
}

}  // namespace testfleet::reports
