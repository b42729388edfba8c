// Crash-safe manifest-run output (see record_file.h).
#include "core/record_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace omni {

namespace {

std::string group_text(const std::vector<nlohmann::ordered_json>& records) {
  std::string s;
  for (const auto& r : records)
    s += r.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The file's complete lines, each with its "line" field (-1 when the line is not a record), and
// whether the file ended inside a line.
struct ParsedLine {
  int64_t line = -1;
  std::string text;  // without the newline
};
std::vector<ParsedLine> parse_records(const std::string& data, bool* truncated) {
  std::vector<ParsedLine> out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) {
      *truncated = true;  // died mid-write: the tail is not a record
      break;
    }
    ParsedLine p;
    p.text = data.substr(pos, nl - pos);
    pos = nl + 1;
    try {
      const auto j = nlohmann::json::parse(p.text);
      if (j.is_object() && j.contains("line") && j["line"].is_number_integer())
        p.line = j["line"].get<int64_t>();
    } catch (const nlohmann::json::exception&) {
    }
    out.push_back(std::move(p));
  }
  return out;
}

// Writes `data` to path.tmp, syncs it and renames it over `path` (then syncs the directory), so
// `path` holds either the old or the new contents, never a mixture.
void replace_file(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw InputError("cannot write '" + tmp + "': " + std::strerror(errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string e = std::strerror(errno);
      ::close(fd);
      throw InputError("write to '" + tmp + "' failed: " + e);
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    throw InputError("cannot sync '" + tmp + "': " + std::strerror(errno));
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw InputError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

RecordFile::RecordFile(std::string path, std::vector<int64_t> order, bool resume, Expected expected)
    : path_(std::move(path)),
      order_(std::move(order)),
      in_order_(order_.begin(), order_.end()),
      expected_(expected ? std::move(expected) : [](int64_t) { return int64_t{1}; }) {
  // Standard output, or something that is not a regular file (/dev/null, a pipe): written in
  // manifest order as it goes, never replaced by rename.
  std::error_code ec;
  const bool special = !path_.empty() && path_ != "-" && std::filesystem::exists(path_, ec) &&
                       !std::filesystem::is_regular_file(path_, ec);
  stdout_ = path_ == "-" || path_.empty() || special;
  if (stdout_) {
    if (resume)
      throw InputError("--resume needs a regular output file (--out), not '" +
                       (path_.empty() ? std::string("-") : path_) + "'");
    if (special) {
      stream_ = std::fopen(path_.c_str(), "w");
      if (!stream_) throw InputError("cannot write '" + path_ + "': " + std::strerror(errno));
    } else {
      stream_ = stdout;
    }
    return;
  }
  if (resume && std::filesystem::exists(path_)) {
    scan_and_rewrite();
  } else {
    replace_file(path_, "");
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0)
    throw InputError("cannot open '" + path_ + "' for appending: " + std::strerror(errno));
  last_sync_ = std::chrono::steady_clock::now();
}

RecordFile::~RecordFile() {
  if (fd_ >= 0) ::close(fd_);
  if (stream_ && stream_ != stdout) std::fclose(stream_);
}

void RecordFile::scan_and_rewrite() {
  const auto lines = parse_records(read_file(path_), &report_.truncated_tail);
  // Consecutive records of one line form its group (each group was appended with one write).
  std::map<int64_t, std::string> kept;
  size_t i = 0;
  while (i < lines.size()) {
    if (lines[i].line < 0) {
      ++report_.unreadable_lines;
      ++i;
      continue;
    }
    const int64_t line = lines[i].line;
    size_t j = i;
    std::string text;
    while (j < lines.size() && lines[j].line == line) text += lines[j++].text + "\n";
    const int64_t n = int64_t(j - i);
    i = j;
    const int64_t index = line - 1;
    if (!in_order_.count(index))
      throw InputError("'" + path_ + "' has records for line " + std::to_string(line) +
                       ", which the manifest does not have: was it written for another manifest?");
    if (n == expected_(index) && !kept.count(index)) {
      kept[index] = std::move(text);
      report_.kept_records += n;
    } else {
      report_.dropped_records += n;
    }
  }
  std::string data;
  for (const auto& [index, text] : kept) {
    finished_.insert(index);
    data += text;
  }
  report_.kept_lines = int64_t(kept.size());
  replace_file(path_, data);
}

void RecordFile::write_all(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw InputError("write to '" + path_ + "' failed: " + std::strerror(errno));
    done += size_t(n);
  }
}

void RecordFile::sync() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0)
    throw InputError("cannot sync '" + path_ + "': " + std::strerror(errno));
  last_sync_ = std::chrono::steady_clock::now();
}

void RecordFile::append(int64_t index, const std::vector<nlohmann::ordered_json>& records) {
  if (!in_order_.count(index))
    throw RunError("record for line " + std::to_string(index + 1) +
                   ", which this run does not have");
  if (!finished_.insert(index).second)
    throw RunError("line " + std::to_string(index + 1) + " was written twice");
  ++written_;
  std::string text = group_text(records);
  if (stdout_) {
    pending_[index] = std::move(text);
    while (next_pos_ < order_.size()) {
      auto it = pending_.find(order_[next_pos_]);
      if (it == pending_.end()) break;
      if (std::fwrite(it->second.data(), 1, it->second.size(), stream_) != it->second.size())
        throw InputError("write to '" + path_ + "' failed: " + std::strerror(errno));
      pending_.erase(it);
      ++next_pos_;
    }
    std::fflush(stream_);
    return;
  }
  write_all(text);
  if (std::chrono::steady_clock::now() - last_sync_ >= sync_interval) sync();
}

void RecordFile::finish() {
  for (int64_t index : order_)
    if (!finished_.count(index))
      throw RunError("line " + std::to_string(index + 1) + " of the manifest has no record");
  if (stdout_) return;
  sync();
  bool truncated = false;
  const auto lines = parse_records(read_file(path_), &truncated);
  // Already in manifest order (single process, or nothing out of order): keep the file as is.
  bool sorted = !truncated;
  for (size_t i = 1; i < lines.size() && sorted; ++i)
    sorted = lines[i].line >= lines[i - 1].line && lines[i].line > 0;
  if (sorted && !lines.empty() && lines[0].line <= 0) sorted = false;
  if (sorted) return;
  std::map<int64_t, std::string> groups;
  for (const auto& l : lines) {
    if (l.line <= 0) throw RunError("'" + path_ + "' holds a line that is not a record: " + l.text);
    groups[l.line] += l.text + "\n";
  }
  std::string data;
  for (const auto& [line, text] : groups) data += text;
  ::close(fd_);
  fd_ = -1;
  replace_file(path_, data);
}

}  // namespace omni
