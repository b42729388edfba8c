// Value types of core: timestamps, packets, params, contracts, registry and the JSON codec.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/core_nodes.h"
#include "core/json_codec.h"
#include "core/packet.h"
#include "core/params.h"
#include "core/registry.h"

namespace omni {
namespace {

TEST(Timestamp, SentinelsOrderAndPrint) {
  EXPECT_FALSE(Timestamp().is_set());
  EXPECT_LT(Timestamp::pre_stream(), Timestamp::min());
  EXPECT_LT(Timestamp::min(), Timestamp(0));
  EXPECT_LT(Timestamp::max(), Timestamp::post_stream());
  EXPECT_TRUE(Timestamp(5).is_range_value());
  EXPECT_FALSE(Timestamp::post_stream().is_range_value());
  EXPECT_EQ(Timestamp(5).next(), Timestamp(6));
  EXPECT_EQ(Timestamp::pre_stream().next(), Timestamp::min());
  EXPECT_EQ(Timestamp::max().next(), Timestamp::post_stream());
  EXPECT_EQ(Timestamp(1234567).to_string(), "1.234567s");
  EXPECT_EQ(Timestamp(-5).to_string(), "-0.000005s");
  EXPECT_EQ(Timestamp::post_stream().to_string(), "post_stream");
  EXPECT_EQ(Timestamp::from_seconds(0.5).us(), 500000);
}

TEST(Packet, WrongTypeNamesBothTypes) {
  Packet p = make_packet<int64_t>(7, Timestamp(3));
  EXPECT_EQ(p.get<int64_t>(), 7);
  try {
    p.get<std::string>();
    FAIL() << "expected TypeError";
  } catch (const TypeError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("int64"), std::string::npos) << m;
    EXPECT_NE(m.find("string"), std::string::npos) << m;
  }
  EXPECT_THROW(Packet().get<int64_t>(), TypeError);
}

TEST(Packet, CopiesShareThePayload) {
  Packet a = Packet::make<std::vector<float>>(Timestamp(1), 1000, 1.0f);
  Packet b = a;
  Packet c = a.at(Timestamp(9));
  EXPECT_EQ(a.payload_address(), b.payload_address());
  EXPECT_EQ(a.payload_address(), c.payload_address());
  EXPECT_EQ(c.timestamp(), Timestamp(9));
  EXPECT_EQ(a.share<std::vector<float>>().get(), &a.get<std::vector<float>>());
}

TEST(Params, ParseEveryType) {
  EXPECT_EQ(std::get<int64_t>(parse_param(ParamType::kInt, "42")), 42);
  EXPECT_EQ(std::get<int64_t>(parse_param(ParamType::kInt, "-0x10")), -16);
  EXPECT_DOUBLE_EQ(std::get<double>(parse_param(ParamType::kDouble, "2.5")), 2.5);
  EXPECT_EQ(std::get<bool>(parse_param(ParamType::kBool, "yes")), true);
  EXPECT_EQ(std::get<bool>(parse_param(ParamType::kBool, "false")), false);
  EXPECT_EQ(std::get<std::string>(parse_param(ParamType::kString, "\"a b\"")), "a b");
  EXPECT_EQ(std::get<StringList>(parse_param(ParamType::kStringList, "[a, 'b', c]")),
            (StringList{"a", "b", "c"}));
  try {
    parse_param(ParamType::kInt, "12abc");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("int64"), std::string::npos);
  }
  EXPECT_THROW(parse_param(ParamType::kDouble, "x"), ConfigError);
  EXPECT_THROW(parse_param(ParamType::kBool, "maybe"), ConfigError);
  EXPECT_EQ(param_to_string(ParamValue{2.0}), "2.0");
  EXPECT_EQ(param_to_string(ParamValue{StringList{"a", "b c"}}), "[a, \"b c\"]");
}

TEST(Params, GettersCheckTypes) {
  Params p({{"n", int64_t{3}}, {"s", std::string("x")}});
  EXPECT_EQ(p.get_int("n"), 3);
  EXPECT_DOUBLE_EQ(p.get_double("n"), 3.0);
  EXPECT_THROW(p.get_string("n"), ConfigError);
  try {
    p.get_int("missing");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("known: n, s"), std::string::npos) << e.what();
  }
}

TEST(Registry, UnknownTypeListsKnownOnes) {
  Registry r;
  register_core_nodes(r);
  EXPECT_TRUE(r.contains("PassThrough"));
  try {
    r.get("PassThru");
    FAIL();
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("PassThru"), std::string::npos);
    EXPECT_NE(m.find("CountingSource"), std::string::npos);
    EXPECT_NE(m.find("JsonlWriter"), std::string::npos);
  }
  EXPECT_THROW(r.add<PassThrough>("PassThrough"), ConfigError);
}

TEST(Contract, PortsAndParams) {
  Contract c = CountingSource::contract();
  EXPECT_TRUE(c.is_source());
  EXPECT_EQ(c.output_index("out"), 0);
  EXPECT_EQ(c.output_index("nope"), -1);
  ASSERT_NE(c.find_param("count"), nullptr);
  EXPECT_EQ(c.find_param("count")->type, ParamType::kInt);
  EXPECT_EQ(type_id<int64_t>().name, "int64");
  EXPECT_EQ(type_id<PacketSet>().name, "PacketSet");
}

struct Custom {
  int v;
};
struct Encoded {
  int v;
};

}  // namespace
}  // namespace omni

// One encoder per type, declared beside it (here defined inline).
template <>
struct omni::PayloadJson<omni::Encoded> {
  static void encode(const omni::Encoded& e, nlohmann::json& out) { out = {{"v", e.v}}; }
};

namespace omni {
namespace {

TEST(JsonCodec, BuiltinsTypeEncodersAndFallback) {
  nlohmann::json j;
  packet_to_json(make_packet<int64_t>(5, Timestamp(0)), j);
  EXPECT_EQ(j, 5);
  packet_to_json(make_packet<std::string>("hi", Timestamp(0)), j);
  EXPECT_EQ(j, "hi");
  packet_to_json(make_packet<std::vector<int64_t>>({1, 2}, Timestamp(0)), j);
  EXPECT_EQ(j, nlohmann::json({1, 2}));
  packet_to_json(Packet(), j);
  EXPECT_TRUE(j.is_null());
  packet_to_json(make_packet<Custom>(Custom{3}, Timestamp(0)), j);
  ASSERT_TRUE(j.is_object());
  EXPECT_NE(j["type"].get<std::string>().find("Custom"), std::string::npos);
  EXPECT_EQ(type_id<Custom>().to_json, nullptr);
  // No registration step: the encoder comes with the type, whatever nodes are registered.
  packet_to_json(make_packet<Encoded>(Encoded{3}, Timestamp(0)), j);
  EXPECT_EQ(j["v"], 3);
  PacketSet set{{"a", "b"}, {make_packet<int64_t>(1, Timestamp(0)), Packet()}};
  packet_to_json(make_packet<PacketSet>(set, Timestamp(0)), j);
  EXPECT_EQ(j, nlohmann::json({{"a", 1}, {"b", nullptr}}));
}

}  // namespace
}  // namespace omni
