// Timestamps: int64 microseconds with sentinel values for stream states (DESIGN.md section 2).
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <string>

namespace omni {

class Timestamp {
 public:
  constexpr Timestamp() = default;  // unset
  constexpr explicit Timestamp(int64_t us) : us_(us) {}

  static constexpr Timestamp unset() { return Timestamp(kUnset); }
  // Bound of a stream before its first packet.
  static constexpr Timestamp pre_stream() { return Timestamp(kPreStream); }
  // Smallest / largest timestamp a packet may carry.
  static constexpr Timestamp min() { return Timestamp(kPreStream + 1); }
  static constexpr Timestamp max() { return Timestamp(kPostStream - 1); }
  // Bound of a stream that is closed: no packet will ever come.
  static constexpr Timestamp post_stream() { return Timestamp(kPostStream); }
  static constexpr Timestamp done() { return Timestamp(kDone); }

  constexpr int64_t us() const { return us_; }
  constexpr double seconds() const { return static_cast<double>(us_) * 1e-6; }
  constexpr bool is_set() const { return us_ != kUnset; }
  // True for values a packet may carry (not a sentinel).
  constexpr bool is_range_value() const { return us_ >= min().us_ && us_ <= max().us_; }
  // The smallest timestamp strictly after this one (saturates at the sentinels).
  constexpr Timestamp next() const {
    return is_range_value() && us_ < max().us_ ? Timestamp(us_ + 1)
           : us_ == kPreStream                 ? min()
                                               : post_stream();
  }
  static Timestamp from_seconds(double s) { return Timestamp(static_cast<int64_t>(s * 1e6)); }

  constexpr auto operator<=>(const Timestamp&) const = default;
  constexpr bool operator==(const Timestamp&) const = default;

  // "12.345678s", or the sentinel's name.
  std::string to_string() const;

 private:
  static constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kPreStream = kUnset + 1;
  static constexpr int64_t kPostStream = std::numeric_limits<int64_t>::max() - 1;
  static constexpr int64_t kDone = std::numeric_limits<int64_t>::max();
  int64_t us_ = kUnset;
};

}  // namespace omni
