// safetensors reader/writer and load_weights: round trips, a file written by the Python library,
// and one test per kind of malformed file (each must give a clear InputError, never a crash).
#include "modalities/common/safetensors.h"
#include "modalities/common/safetensors_header.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"
#include "modalities/common/weights.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("omni_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a raw file: 8-byte little-endian header length, header text, then `data` bytes.
  std::string raw(const std::string& name, const std::string& header, size_t data_bytes,
                  uint64_t declared_len = UINT64_MAX) {
    std::string p = path(name);
    std::ofstream f(p, std::ios::binary);
    uint64_t n = declared_len == UINT64_MAX ? header.size() : declared_len;
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header;
    f << std::string(data_bytes, '\0');
    return p;
  }

  // Expects open() to throw InputError whose message contains `needle` and the path.
  void expect_error(const std::string& p, const std::string& needle) {
    try {
      auto f = SafeTensorsFile::open(p);
      FAIL() << "expected InputError containing '" << needle << "'";
    } catch (const InputError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
    }
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripsEveryDtype) {
  TensorMap in;
  auto base = at::arange(24, at::kDouble);
  in["f64"] = base.reshape({2, 12}) * 1.25;
  in["f32"] = (base.reshape({2, 3, 4}) * 0.5 - 3).to(at::kFloat);
  in["f16"] = (base * 0.25).to(at::kHalf);
  in["bf16"] = (base - 7).to(at::kBFloat16).reshape({6, 4});
  in["i64"] = base.to(at::kLong) * int64_t{1000000007};
  in["i32"] = (base - 12).to(at::kInt);
  in["i16"] = (base * -3).to(at::kShort);
  in["i8"] = (base - 100).to(at::kChar);
  in["u8"] = (base * 10).to(at::kByte);
  in["bool"] = (base.to(at::kLong).remainder(3) == 0);
  in["scalar"] = at::scalar_tensor(3.25, at::kFloat);
  in["empty"] = at::zeros({0, 5});
  in["strided"] = at::arange(12, at::kFloat).reshape({3, 4}).t();  // non-contiguous input
  save_safetensors(path("all.safetensors"), in, {{"k", "v"}});

  auto f = SafeTensorsFile::open(path("all.safetensors"));
  EXPECT_EQ(f->names().size(), in.size());
  EXPECT_EQ(f->metadata().at("k"), "v");
  for (const auto& [name, t] : in) {
    SCOPED_TRACE(name);
    at::Tensor got = f->get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type());
    EXPECT_EQ(got.sizes(), t.sizes());
    EXPECT_TRUE(at::equal(got, t.contiguous()));
    EXPECT_EQ(f->shape(name), t.sizes().vec());
  }
  // The file's data region starts 8-byte aligned.
  std::ifstream raw(path("all.safetensors"), std::ios::binary);
  unsigned char len[8];
  raw.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  EXPECT_EQ((8 + n) % 8, 0u);
}

TEST_F(SafetensorsTest, TensorsOutliveTheFileObject) {
  save_safetensors(path("a.safetensors"), {{"x", at::arange(1000, at::kFloat)}});
  at::Tensor x;
  {
    auto f = SafeTensorsFile::open(path("a.safetensors"));
    x = f->get("x");
  }
  // The mapping must stay alive through the tensor's deleter.
  EXPECT_FLOAT_EQ(x[999].item<float>(), 999.f);
  EXPECT_FLOAT_EQ(x.sum().item<float>(), 499500.f);
}

// get() views the mapping (maps() says so), which is copy on write: writing through a view
// changes this mapping's pages, never the file.
TEST_F(SafetensorsTest, ViewsAreCopyOnWrite) {
  save_safetensors(path("a.safetensors"), {{"x", at::arange(16, at::kFloat)}});
  auto f = SafeTensorsFile::open(path("a.safetensors"));
  EXPECT_TRUE(f->copy_on_write());
  at::Tensor x = f->get("x");
  EXPECT_TRUE(f->maps(x.data_ptr()));
  EXPECT_FALSE(f->maps(x.clone().data_ptr()));
  x.mul_(2);
  EXPECT_TRUE(f->get("x").equal(at::arange(16, at::kFloat) * 2));
  EXPECT_TRUE(
      SafeTensorsFile::open(path("a.safetensors"))->get("x").equal(at::arange(16, at::kFloat)));
}

TEST_F(SafetensorsTest, ReadsFileWrittenByPythonLibrary) {
  const std::string p =
      std::string(OMNI_SOURCE_DIR) + "/tests/fixtures/fusion/python_written.safetensors";
  auto f = SafeTensorsFile::open(p);
  EXPECT_EQ(f->metadata().at("writer"), "python-safetensors");
  auto ar = at::arange(24, at::kDouble);
  EXPECT_TRUE(at::equal(f->get("f32"), (ar.reshape({2, 3, 4}) * 0.5 - 3).to(at::kFloat)));
  EXPECT_TRUE(at::equal(f->get("f16"), (ar.reshape({4, 6}) * 0.25).to(at::kHalf)));
  EXPECT_TRUE(at::equal(f->get("bf16"), (ar.reshape({6, 4}) - 7).to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(f->get("f64"), (ar * 1.5).reshape({3, 8})));
  EXPECT_TRUE(at::equal(f->get("i64"), ar.to(at::kLong) * int64_t{1000000007}));
  EXPECT_TRUE(at::equal(f->get("i32"), (ar.to(at::kInt) - 12).reshape({2, 12})));
  EXPECT_TRUE(at::equal(f->get("i16"), ar.to(at::kShort) * -3));
  EXPECT_TRUE(at::equal(f->get("i8"), ar.to(at::kChar) - 100));
  EXPECT_TRUE(at::equal(f->get("u8"), ar.to(at::kByte) * 10));
  EXPECT_TRUE(at::equal(f->get("bool"), (ar.to(at::kLong).remainder(3) == 0).reshape({4, 6})));
  EXPECT_EQ(f->get("scalar").dim(), 0);
  EXPECT_FLOAT_EQ(f->get("scalar").item<float>(), 3.25f);
  EXPECT_EQ(f->get("empty").sizes(), at::IntArrayRef({0, 5}));
}

TEST_F(SafetensorsTest, MissingTensorNamed) {
  save_safetensors(path("a.safetensors"), {{"x", at::ones({2})}});
  auto f = SafeTensorsFile::open(path("a.safetensors"));
  EXPECT_FALSE(f->contains("y"));
  EXPECT_THROW(f->get("y"), InputError);
}

TEST_F(SafetensorsTest, MissingFile) { expect_error(path("nope.safetensors"), "cannot open"); }

TEST_F(SafetensorsTest, TooShortForHeaderLength) {
  std::string p = path("short");
  std::ofstream(p) << "abc";
  expect_error(p, "shorter than the 8-byte header length");
}

TEST_F(SafetensorsTest, TruncatedData) {
  save_safetensors(path("a.safetensors"), {{"x", at::ones({100})}});
  fs::resize_file(path("a.safetensors"), fs::file_size(path("a.safetensors")) - 10);
  expect_error(path("a.safetensors"), "outside the data region");
}

TEST_F(SafetensorsTest, TruncatedHeader) {
  expect_error(raw("t", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 0, 500),
               "runs past the end");
}

TEST_F(SafetensorsTest, HugeHeaderLength) {
  expect_error(raw("h", "{}", 0, uint64_t(1) << 62), "exceeds the bound");
}

// Limits instead of trust: a header claiming a 100 GB tensor in a small file is refused from the
// header alone (no allocation or read of what it claims); so is the same claim with the shape
// and the offsets disagreeing, and a shape whose element count overflows 64 bits.
TEST_F(SafetensorsTest, Claimed100GBTensorIsRefusedFromTheHeader) {
  expect_error(raw("big",
                   R"({"w":{"dtype":"F32","shape":[25000000000],)"
                   R"("data_offsets":[0,100000000000]}})",
                   64),
               "outside the data region of 64 bytes");
  expect_error(
      raw("big2", R"({"w":{"dtype":"F32","shape":[25000000000],"data_offsets":[0,64]}})", 64),
      "needs 100000000000 bytes but data_offsets give 64");
  expect_error(raw("big3",
                   R"({"w":{"dtype":"F64","shape":[4294967296,4294967296,16],)"
                   R"("data_offsets":[0,64]}})",
                   64),
               "more than 2^64");
  // The same through the byte-level parser that SafeTensorsFile uses (and fuzz_safetensors runs).
  const std::string h =
      R"({"w":{"dtype":"BF16","shape":[50000000000],"data_offsets":[0,100000000000]}})";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((uint64_t(h.size()) >> (8 * i)) & 0xff);
  file += h + std::string(16, '\0');
  EXPECT_THROW(parse_safetensors_header(reinterpret_cast<const unsigned char*>(file.data()),
                                        file.size(), "mem"),
               InputError);
}

TEST_F(SafetensorsTest, BadJson) {
  expect_error(raw("j", R"({"x":{"dtype":"F32",)", 16), "not valid JSON");
  expect_error(raw("j2", "[1,2]", 0), "not a JSON object");
}

TEST_F(SafetensorsTest, LyingOffsets) {
  expect_error(raw("o", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8),
               "outside the data region");
  expect_error(raw("o2", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
               "end before they begin");
  expect_error(raw("o3", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8),
               "two non-negative integers");
  expect_error(raw("o4", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 8),
               "two non-negative integers");
}

TEST_F(SafetensorsTest, OverlappingRanges) {
  expect_error(raw("ov",
                   R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                   16),
               "overlapping");
  // One long range containing two later ones: only a sweep over the furthest end catches c.
  expect_error(raw("ov2",
                   R"({"a":{"dtype":"U8","shape":[32],"data_offsets":[0,32]},)"
                   R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("c":{"dtype":"U8","shape":[4],"data_offsets":[20,24]}})",
                   32),
               "overlapping");
}

TEST_F(SafetensorsTest, UnknownDtype) {
  expect_error(raw("d", R"({"x":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", 8),
               "unknown dtype 'F8_E9'");
}

TEST_F(SafetensorsTest, ShapeSizeMismatch) {
  expect_error(raw("s", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
               "needs 12 bytes but data_offsets give 8");
  // A shape whose element count overflows 64 bits must not wrap to a small size.
  expect_error(raw("s2",
                   R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                   R"("data_offsets":[0,0]}})",
                   8),
               "more than 2^64");
  expect_error(raw("s3", R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 8),
               "negative");
}

TEST_F(SafetensorsTest, MalformedEntries) {
  expect_error(raw("e1", R"({"x":{"dtype":"F32","shape":[1]}})", 8), "needs dtype, shape");
  expect_error(raw("e2", R"({"x":5})", 8), "not an object");
  expect_error(raw("e3", R"({"__metadata__":{"a":1}})", 0), "not a string");
}

TEST_F(SafetensorsTest, UnalignedOffsetsAreCopiedNotMisread) {
  // Another writer may leave a 4-byte tensor at an odd offset: the reader copies it.
  std::string p = raw("u",
                      R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                      R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})",
                      0);
  // Pad the header so the data region starts 8-byte aligned, then write b = 2.0f at offset 1.
  {
    std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
    while ((header.size() + 8) % 8) header.push_back(' ');
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header;
    float v = 2.0f;
    f.put(7);
    f.write(reinterpret_cast<const char*>(&v), 4);
  }
  auto f = SafeTensorsFile::open(p);
  EXPECT_EQ(f->get("a").item<uint8_t>(), 7);
  EXPECT_FLOAT_EQ(f->get("b").item<float>(), 2.0f);
}

TEST_F(SafetensorsTest, WriterRejectsUnsupportedDtype) {
  EXPECT_THROW(save_safetensors(path("c.safetensors"), {{"c", at::ones({2}, at::kComplexFloat)}}),
               InputError);
}

TEST_F(SafetensorsTest, LoadWeightsChecksNamesAndShapes) {
  torch::nn::Linear a(torch::nn::LinearOptions(4, 3));
  save_safetensors(path("w.safetensors"), module_tensors(*a, "enc."));
  torch::nn::Linear b(torch::nn::LinearOptions(4, 3));
  auto f = SafeTensorsFile::open(path("w.safetensors"));
  load_weights(*b, *f, "enc.");
  EXPECT_TRUE(at::equal(a->weight, b->weight));
  EXPECT_TRUE(at::equal(a->bias, b->bias));

  // Wrong shape, missing and unexpected keys are all listed in one error.
  TensorMap bad;
  bad["enc.weight"] = at::zeros({3, 5});
  bad["enc.extra"] = at::zeros({1});
  bad["other.ignored"] = at::zeros({1});  // outside the prefix: not unexpected
  save_safetensors(path("bad.safetensors"), bad);
  auto fb = SafeTensorsFile::open(path("bad.safetensors"));
  torch::nn::Linear c(torch::nn::LinearOptions(4, 3));
  at::Tensor before = c->weight.clone();
  try {
    load_weights(*c, *fb, "enc.");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("missing keys: enc.bias"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected keys: enc.extra"), std::string::npos) << m;
    EXPECT_NE(m.find("enc.weight (file [3,5], module [3,4])"), std::string::npos) << m;
    EXPECT_EQ(m.find("other.ignored"), std::string::npos) << m;
    EXPECT_NE(m.find("bad.safetensors"), std::string::npos) << m;
  }
  EXPECT_TRUE(at::equal(before, c->weight));  // untouched on failure
}

TEST_F(SafetensorsTest, LoadWeightsConvertsDtype) {
  torch::nn::Linear a(torch::nn::LinearOptions(2, 2));
  TensorMap m = module_tensors(*a);
  for (auto& [k, v] : m) v = v.to(at::kHalf);
  save_safetensors(path("h.safetensors"), m);
  torch::nn::Linear b(torch::nn::LinearOptions(2, 2));
  load_weights(*b, *SafeTensorsFile::open(path("h.safetensors")));
  EXPECT_TRUE(at::allclose(a->weight, b->weight, 1e-3, 1e-3));
  EXPECT_EQ(b->weight.scalar_type(), at::kFloat);
}

}  // namespace
}  // namespace omni
