// llama_top1: the top-1 token of llama.cpp at every position of a given id sequence, and its
// greedy continuation, for scripts/bench-real's agreement check against omnipipe (the same ids
// fed to both; built by scripts/bench-real against the llama.cpp it benchmarks).
//
//   llama_top1 MODEL.gguf IDS.txt THREADS N_GEN > out.json
//
// IDS.txt: whitespace-separated token ids. Prints one JSON object: {"n_prompt", "argmax" (one per
// prompt position: the predicted next id), "margin" (top-1 minus top-2 logit per position),
// "greedy" (N_GEN ids generated greedily after the prompt), "vocab"}.
#include <stdio.h>
#include <stdlib.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char* text, void* data) {
  (void)data;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static int top2(const float* v, int n, float* margin) {
  int best = 0, second = -1;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) {
      second = best;
      best = i;
    } else if (second < 0 || v[i] > v[second]) {
      second = i;
    }
  }
  *margin = second < 0 ? 0.0f : v[best] - v[second];
  return best;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: llama_top1 MODEL.gguf IDS.txt THREADS N_GEN\n");
    return 2;
  }
  const int threads = atoi(argv[3]), n_gen = atoi(argv[4]);
  FILE* f = fopen(argv[2], "r");
  if (!f) {
    fprintf(stderr, "llama_top1: cannot open %s\n", argv[2]);
    return 1;
  }
  int cap = 1024, n = 0;
  llama_token* ids = malloc(sizeof(llama_token) * cap);
  long v;
  while (fscanf(f, "%ld", &v) == 1) {
    if (n == cap) ids = realloc(ids, sizeof(llama_token) * (cap *= 2));
    ids[n++] = (llama_token)v;
  }
  fclose(f);
  if (n == 0 || threads < 1 || n_gen < 0) {
    fprintf(stderr, "llama_top1: no ids, or bad THREADS / N_GEN\n");
    return 1;
  }
  llama_log_set(quiet, NULL);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "llama_top1: cannot load %s\n", argv[1]);
    return 1;
  }
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) {
      fprintf(stderr, "llama_top1: id %d out of range (vocab %d)\n", ids[i], vocab);
      return 1;
    }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(n + n_gen + 16);
  cp.n_batch = cp.n_ubatch = (uint32_t)n;
  cp.n_threads = cp.n_threads_batch = threads;
  struct llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    fprintf(stderr, "llama_top1: cannot create a context\n");
    return 1;
  }
  struct llama_batch b = llama_batch_init(n, 0, 1);
  for (int i = 0; i < n; ++i) {
    b.token[i] = ids[i];
    b.pos[i] = i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = n;
  if (llama_decode(ctx, b) != 0) {
    fprintf(stderr, "llama_top1: decode failed\n");
    return 1;
  }
  printf("{\"n_prompt\": %d, \"vocab\": %d, \"argmax\": [", n, vocab);
  float* margins = malloc(sizeof(float) * n);
  int next = 0;
  for (int i = 0; i < n; ++i) {
    next = top2(llama_get_logits_ith(ctx, i), vocab, &margins[i]);
    printf("%s%d", i ? ", " : "", next);
  }
  printf("], \"margin\": [");
  for (int i = 0; i < n; ++i) printf("%s%.5g", i ? ", " : "", margins[i]);
  printf("], \"greedy\": [");
  for (int g = 0; g < n_gen; ++g) {
    printf("%s%d", g ? ", " : "", next);
    if (g + 1 == n_gen) break;
    struct llama_batch one = llama_batch_get_one(&next, 1);
    if (llama_decode(ctx, one) != 0) {
      fprintf(stderr, "llama_top1: decode failed\n");
      return 1;
    }
    float m;
    next = top2(llama_get_logits_ith(ctx, -1), vocab, &m);
  }
  printf("]}\n");
  llama_batch_free(b);
  llama_free(ctx);
  llama_model_free(model);
  free(margins);
  free(ids);
  return 0;
}
