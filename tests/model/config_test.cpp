// Named presets (spec.md §8 shapes, parameter counts checked against the published LLaMA-7B
// count), vocabulary padding and the validation messages.
#include "model/config.h"

#include <gtest/gtest.h>

#include "model/llama.h"

namespace hydraulis::model {
namespace {

TEST(LlamaConfig, SpecPresets) {
  struct Expected {
    const char* name;
    int64_t layers, hidden, ffn, heads;
  };
  for (Expected e : {Expected{"7b", 32, 4096, 11008, 32}, Expected{"13b", 40, 5120, 13824, 40},
                     Expected{"32b", 60, 6656, 17920, 64}}) {
    auto c = llama_config(e.name);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->num_layers, e.layers) << e.name;
    EXPECT_EQ(c->hidden, e.hidden) << e.name;
    EXPECT_EQ(c->ffn_hidden, e.ffn) << e.name;
    EXPECT_EQ(c->num_heads, e.heads) << e.name;
    EXPECT_EQ(c->num_kv_heads, e.heads) << e.name;
    EXPECT_EQ(c->vocab_size, 50304) << e.name;
    EXPECT_EQ(c->lm_head, LmHead::kUntied) << e.name;
  }
}

TEST(LlamaConfig, ParameterCountMatchesLlama7b) {
  // Meta's LLaMA-7B has 6,738,415,616 parameters with a 32,000-token vocabulary.
  auto c = llama_config("7b", 32000, 32000);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->num_parameters(), 6738415616);
  EXPECT_EQ(c->head_dim(), 128);
}

TEST(LlamaConfig, TinyAndSmallPresets) {
  auto tiny = llama_config("tiny");
  ASSERT_TRUE(tiny.is_ok());
  EXPECT_EQ(tiny->num_layers, 4);
  EXPECT_EQ(tiny->hidden, 128);
  EXPECT_EQ(tiny->num_kv_heads, 2);
  EXPECT_EQ(tiny->ffn_hidden, 384);
  EXPECT_EQ(tiny->max_seq_len, 1024);
  // 50304·128 tied embedding + 4 layers · (2·128 + 128·128 + 2·128·64 + 128·128 + 3·384·128) + 128.
  EXPECT_EQ(tiny->num_parameters(), 50304 * 128 + 4 * (256 + 16384 + 16384 + 16384 + 147456) + 128);
  auto small = llama_config("125m");
  ASSERT_TRUE(small.is_ok());
  EXPECT_NEAR(double(small->num_parameters()), 124e6, 2e6);
  auto one_b = llama_config("1b");
  ASSERT_TRUE(one_b.is_ok());
  EXPECT_NEAR(double(one_b->num_parameters()), 1.17e9, 0.02e9);
}

TEST(LlamaConfig, VocabularyPadding) {
  EXPECT_EQ(padded_vocab_size(50257), 50304);
  EXPECT_EQ(padded_vocab_size(50304), 50304);
  EXPECT_EQ(padded_vocab_size(1), 128);
  auto c = llama_config("tiny", 60000);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->vocab_size, 60000);
  auto small = llama_config("tiny", 50000);
  ASSERT_FALSE(small.is_ok());
  EXPECT_NE(small.status().message().find("smaller than the tokenizer's 50257"), std::string::npos)
      << small.status().message();
}

TEST(LlamaConfig, ValidationNamesTheField) {
  auto unknown = llama_config("3b");
  ASSERT_FALSE(unknown.is_ok());
  EXPECT_NE(unknown.status().message().find("tiny, 125m, 1b, 7b, 13b, 32b"), std::string::npos);
  LlamaConfig c = *llama_config("tiny");
  c.num_kv_heads = 3;
  EXPECT_NE(c.validate().message().find("num_kv_heads 3 must divide num_heads 4"),
            std::string::npos)
      << c.validate().message();
  c = *llama_config("tiny");
  c.num_heads = 3;
  EXPECT_NE(c.validate().message().find("not a multiple of num_heads 3"), std::string::npos);
  c = *llama_config("tiny");
  c.hidden = 4 * 33;  // head dim 33 is odd
  EXPECT_NE(c.validate().message().find("must be even"), std::string::npos);
  c = *llama_config("tiny");
  c.rope_theta = 0;
  EXPECT_FALSE(c.validate().is_ok());
}

TEST(MemoryEstimate, CountsWeightsGradsMomentsAndActivations) {
  LlamaConfig c = *llama_config("7b");
  MemoryEstimate m = estimate_memory(c, 4096, {});
  EXPECT_EQ(m.parameter_bytes, 16 * c.num_parameters());
  // Without recomputation every layer keeps layer_activation_elements_per_token floats per token.
  EXPECT_EQ(m.activation_bytes, 32 * 4096 * 4 * layer_activation_elements_per_token(c));
  MemoryEstimate full = estimate_memory(c, 4096, {Recompute::kFull, 256});
  EXPECT_LT(full.activation_bytes, m.activation_bytes / 4);
  EXPECT_GT(m.total(), int64_t{110} << 30);  // 7B on one device does not fit a 80 GB GPU
}

}  // namespace
}  // namespace hydraulis::model
