// Scheme space loader: the three reference files load with the values they hold, to_json round
// trips, and every schema error names the file, the key, the value and the fix.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/file.h"
#include "planner/scheme_space.h"

namespace hydraulis::planner {
namespace {

using core::Json;

std::string reference_path(const std::string& model) {
  const char* root = std::getenv("HYD_SOURCE_DIR");
  return fmt::format("{}/configs/scheme_space/parallel_scheme_space_{}.json", root ? root : ".",
                     model);
}

Json reference_json(const std::string& model) {
  auto json = core::read_json_file(reference_path(model));
  EXPECT_TRUE(json.is_ok()) << json.status().to_string();
  return *json;
}

TEST(SchemeSpace, LoadsAllReferenceFiles) {
  for (const std::string model : {"7b", "13b", "32b"}) {
    auto space = SchemeSpace::load(reference_path(model));
    ASSERT_TRUE(space.is_ok()) << model << ": " << space.status().to_string();
  }
}

TEST(SchemeSpace, ReferenceValues32b) {
  auto space = SchemeSpace::load(reference_path("32b"));
  ASSERT_TRUE(space.is_ok()) << space.status().to_string();
  EXPECT_EQ(space->schemes().size(), 15u);
  EXPECT_EQ(space->model().hidden, 6656);
  EXPECT_EQ(space->model().layers, 60);
  EXPECT_EQ(space->model().vocab, 30592);
  EXPECT_EQ(space->memory().activation_per_tp.at(16), 50.0);
  EXPECT_EQ(space->memory().activation_per_tp.at(4), 37.0);
  EXPECT_EQ(space->memory().block_bytes, 201.0);
  EXPECT_EQ(space->memory().alpha, 0.75);
  EXPECT_EQ(space->memory().gap.at("node"), 5242880000.0);
  EXPECT_EQ(space->memory().safe_bound, 10737418240.0);
  EXPECT_EQ(space->cluster().gpus_per_node, 8);
  EXPECT_EQ(space->cluster().gpu_memory_bound, 85198897152.0);
  EXPECT_EQ(space->utilization_seqlen(16), 1280);
  EXPECT_EQ(space->utilization_seqlen(1), 384);
  EXPECT_EQ(space->utilization_seqlen(3), 0);
  EXPECT_EQ(space->hetero_dp_comm_ms(), 300.0);
  // pp 3 is profiled for tp 8 (pp need not be a power of two).
  const SchemeCost* tp8pp3 = space->find(Scheme{1, 8, 3});
  ASSERT_NE(tp8pp3, nullptr);
  EXPECT_EQ(space->find(Scheme{1, 16, 2}), nullptr);
  EXPECT_EQ(space->find(Scheme{2, 8, 3}), nullptr);
  const Json raw = reference_json("32b");
  for (const Json& s : raw["strategies"]) {
    if (s["tp"] == 8 && s["pp"] == 3) {
      EXPECT_EQ(tp8pp3->a, s["a"].get<double>());
      EXPECT_EQ(tp8pp3->b, s["b"].get<double>());
      EXPECT_EQ(tp8pp3->c, s["c"].get<double>());
    }
  }
}

TEST(SchemeSpace, SchemeCountsAndOrder) {
  auto s7 = SchemeSpace::load(reference_path("7b"));
  auto s13 = SchemeSpace::load(reference_path("13b"));
  ASSERT_TRUE(s7.is_ok() && s13.is_ok());
  EXPECT_EQ(s7->schemes().size(), 13u);
  EXPECT_EQ(s13->schemes().size(), 12u);
  EXPECT_EQ(s7->schemes().front().scheme, (Scheme{1, 1, 2}));
  EXPECT_EQ(s7->schemes().back().scheme, (Scheme{1, 16, 1}));
  EXPECT_EQ(s7->schemes().front().a, 1.37240947e-06);
  EXPECT_EQ(s7->schemes().front().c, 15.047058823529596);
  EXPECT_EQ(Scheme({1, 8, 2}).to_string(), "(1, 8, 2)");
  EXPECT_EQ(Scheme({2, 8, 2}).gpus(), 32);
}

TEST(SchemeSpace, ToJsonRoundTripsReferenceFiles) {
  for (const std::string model : {"7b", "13b", "32b"}) {
    const Json raw = reference_json(model);
    auto space = SchemeSpace::from_json(raw, model);
    ASSERT_TRUE(space.is_ok()) << space.status().to_string();
    EXPECT_EQ(space->to_json(), raw) << model;
    auto again = SchemeSpace::from_json(space->to_json(), model);
    ASSERT_TRUE(again.is_ok());
    EXPECT_EQ(again->to_json(), raw);
  }
}

TEST(SchemeSpace, SaveAndLoadWithCp) {
  auto space = SchemeSpace::load(reference_path("7b"));
  ASSERT_TRUE(space.is_ok());
  space->add_scheme(SchemeCost{Scheme{2, 8, 1}, 2.5e-7, 0.02, 40.0});
  std::string path = ::testing::TempDir() + "/hyd_scheme_space_cp.json";
  ASSERT_TRUE(space->save(path).is_ok());
  auto loaded = SchemeSpace::load(path);
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().to_string();
  const SchemeCost* cp2 = loaded->find(Scheme{2, 8, 1});
  ASSERT_NE(cp2, nullptr);
  EXPECT_EQ(cp2->a, 2.5e-7);
  EXPECT_EQ(cp2->c, 40.0);
  EXPECT_EQ(loaded->to_json(), space->to_json());
  EXPECT_EQ(loaded->to_json()["strategies"].back()["cp"], 2);
  std::filesystem::remove(path);
}

TEST(SchemeSpace, OptionalKeys) {
  Json raw = reference_json("7b");
  raw.erase("comm_cost");
  raw["cluster_config"].erase("utilization_seqlen");
  auto space = SchemeSpace::from_json(raw, "x.json");
  ASSERT_TRUE(space.is_ok()) << space.status().to_string();
  EXPECT_EQ(space->hetero_dp_comm_ms(), 0.0);
  EXPECT_EQ(space->utilization_seqlen(8), 0);
}

// Applies `edit` to the 7b reference file and expects an error mentioning every `needle`.
void expect_error(const std::function<void(Json&)>& edit, std::vector<std::string> needles) {
  Json raw = reference_json("7b");
  edit(raw);
  auto space = SchemeSpace::from_json(raw, "bad_space.json");
  ASSERT_FALSE(space.is_ok()) << "no error for edit expecting '" << needles.front() << "'";
  const std::string& msg = space.status().message();
  EXPECT_NE(msg.find("bad_space.json"), std::string::npos) << msg;
  for (const std::string& needle : needles) {
    EXPECT_NE(msg.find(needle), std::string::npos) << "'" << needle << "' not in: " << msg;
  }
}

TEST(SchemeSpace, SchemaErrors) {
  expect_error([](Json& j) { j = Json::array(); }, {"JSON object"});
  expect_error([](Json& j) { j.erase("strategies"); }, {"'strategies' missing"});
  expect_error([](Json& j) { j["strategies"] = Json::array(); }, {"non-empty array"});
  expect_error([](Json& j) { j["strategies"] = 7; }, {"'strategies'"});
  expect_error([](Json& j) { j["strategies"][2].erase("a"); }, {"strategies[2].a", "missing"});
  expect_error([](Json& j) { j["strategies"][0]["tp"] = "2"; },
               {"strategies[0].tp", "integer", "\"2\""});
  expect_error([](Json& j) { j["strategies"][0]["tp"] = 3; },
               {"strategies[0].tp", "3", "power of two"});
  expect_error([](Json& j) { j["strategies"][0]["cp"] = 6; },
               {"strategies[0].cp", "6", "power of two"});
  expect_error([](Json& j) { j["strategies"][1]["pp"] = 0; }, {"strategies[1].pp", "0", ">= 1"});
  expect_error([](Json& j) { j["strategies"][1]["tp"] = -4; }, {"strategies[1].tp", "-4"});
  expect_error([](Json& j) { j["strategies"][3]["b"] = -0.5; },
               {"strategies[3].b", "-0.5", ">= 0"});
  expect_error([](Json& j) { j["strategies"][3]["c"] = "fast"; },
               {"strategies[3].c", "number", "\"fast\""});
  expect_error([](Json& j) { j["strategies"].push_back(j["strategies"][4]); },
               {"strategies[13]", "(1, 2, 2)", "duplicate"});
  expect_error([](Json& j) { j["memory_regression"]["A"].erase("tp16"); },
               {"strategies[12]", "tp 16", "\"tp16\""});
  expect_error([](Json& j) { j["memory_regression"]["A"]["t8"] = 3; },
               {"memory_regression.A.t8", "tpN"});
  expect_error([](Json& j) { j["memory_regression"]["A"]["tp3"] = 3; },
               {"memory_regression.A.tp3", "power of two"});
  expect_error([](Json& j) { j["memory_regression"]["A"]["tp2"] = 0; },
               {"memory_regression.A.tp2", "> 0"});
  expect_error([](Json& j) { j["memory_regression"]["alpha"] = 1.5; },
               {"memory_regression.alpha", "1.5", "[0, 1]"});
  expect_error([](Json& j) { j["memory_regression"]["B"] = 0; }, {"memory_regression.B", "> 0"});
  expect_error([](Json& j) { j["memory_regression"]["gap"].erase("node"); },
               {"memory_regression.gap.node", "missing"});
  expect_error([](Json& j) { j["memory_regression"]["gap"]["gpu1"] = -1; },
               {"memory_regression.gap.gpu1", "-1"});
  expect_error([](Json& j) { j["memory_regression"].erase("safe_bound"); },
               {"memory_regression.safe_bound", "missing"});
  expect_error([](Json& j) { j.erase("memory_regression"); }, {"memory_regression", "missing"});
  expect_error([](Json& j) { j["model_config"]["H"] = 0; }, {"model_config.H", "0", ">= 1"});
  expect_error([](Json& j) { j["model_config"]["L"] = "32"; }, {"model_config.L", "integer"});
  expect_error([](Json& j) { j["model_config"]["V"] = 3.5; }, {"model_config.V", "3.5"});
  expect_error([](Json& j) { j.erase("model_config"); }, {"model_config", "missing"});
  expect_error([](Json& j) { j["cluster_config"]["gpu_memory_bound"] = -1; },
               {"cluster_config.gpu_memory_bound", "-1", "> 0"});
  expect_error([](Json& j) { j["cluster_config"]["gpus_per_node"] = 0; },
               {"cluster_config.gpus_per_node", ">= 1"});
  expect_error([](Json& j) { j["cluster_config"]["utilization_seqlen"]["tp8"] = -5; },
               {"cluster_config.utilization_seqlen.tp8", "-5"});
  expect_error([](Json& j) { j["comm_cost"] = 300; }, {"comm_cost", "object"});
  expect_error([](Json& j) { j["comm_cost"]["hetero_dp"] = -3; }, {"comm_cost.hetero_dp", "-3"});
}

TEST(SchemeSpace, FileErrors) {
  auto missing = SchemeSpace::load(::testing::TempDir() + "/no_such_scheme_space.json");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("no_such_scheme_space.json"), std::string::npos);

  std::string path = ::testing::TempDir() + "/hyd_bad_scheme_space.json";
  {
    std::ofstream out(path);
    out << "{\n  \"strategies\": [\n    {\"tp\": 1,, \"pp\": 2}\n  ]\n}\n";
  }
  auto bad = SchemeSpace::load(path);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("hyd_bad_scheme_space.json:3:"), std::string::npos)
      << bad.status().message();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace hydraulis::planner
