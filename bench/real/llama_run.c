// llama_run: llama.cpp's side of scripts/bench-real, on given token ids: the prompt's forward
// pass (prefill) and greedy decoding after it, timed, in one process with the library's defaults
// (n_ubatch 512, f16 KV cache, flash attention auto), and optionally the top-1 token at every
// prompt position for the agreement check against omnipipe. Built by scripts/bench-real against
// the llama.cpp it benchmarks.
//
//   llama_run MODEL.gguf IDS.txt THREADS N_GEN [--all-logits] > out.json
//
// IDS.txt: whitespace-separated token ids. One untimed warm-up token runs first (it touches every
// weight page of the memory-mapped model), then the KV cache is cleared. Prints one JSON object:
// n_prompt, prefill_seconds, prefill_tokens_per_s, decode_tokens_per_s (the N_GEN - 1 tokens after
// the first, as omnipipe and transformers count), greedy (N_GEN ids), and with --all-logits argmax
// (the predicted next id at every prompt position) and margin (top-1 minus top-2 logit).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char* text, void* data) {
  (void)data;
  if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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
  if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "--all-logits") != 0)) {
    fprintf(stderr, "usage: llama_run MODEL.gguf IDS.txt THREADS N_GEN [--all-logits]\n");
    return 2;
  }
  const int threads = atoi(argv[3]), n_gen = atoi(argv[4]), all = argc == 6;
  FILE* f = fopen(argv[2], "r");
  if (!f) {
    fprintf(stderr, "llama_run: cannot open %s\n", argv[2]);
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
  if (n == 0 || threads < 1 || n_gen < 1) {
    fprintf(stderr, "llama_run: no ids, or THREADS / N_GEN below 1\n");
    return 1;
  }
  llama_log_set(quiet, NULL);
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    fprintf(stderr, "llama_run: cannot load %s\n", argv[1]);
    return 1;
  }
  const int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  for (int i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) {
      fprintf(stderr, "llama_run: id %d out of range (vocab %d)\n", ids[i], vocab);
      return 1;
    }
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (uint32_t)(n + n_gen + 16);
  cp.n_batch = (uint32_t)n;
  cp.n_threads = cp.n_threads_batch = threads;
  struct llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) {
    fprintf(stderr, "llama_run: cannot create a context\n");
    return 1;
  }
  // Warm-up (untimed), then an empty cache.
  if (llama_decode(ctx, llama_batch_get_one(ids, 1)) != 0) {
    fprintf(stderr, "llama_run: decode failed\n");
    return 1;
  }
  llama_synchronize(ctx);
  llama_memory_clear(llama_get_memory(ctx), 1);

  struct llama_batch b = llama_batch_init(n, 0, 1);
  for (int i = 0; i < n; ++i) {
    b.token[i] = ids[i];
    b.pos[i] = i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = all || i == n - 1;
  }
  b.n_tokens = n;
  const double t0 = now_s();
  if (llama_decode(ctx, b) != 0) {
    fprintf(stderr, "llama_run: decode failed\n");
    return 1;
  }
  llama_synchronize(ctx);
  float m;
  llama_token next = top2(llama_get_logits_ith(ctx, n - 1), vocab, &m);
  const double t1 = now_s();
  llama_token* greedy = malloc(sizeof(llama_token) * n_gen);
  greedy[0] = next;
  for (int g = 1; g < n_gen; ++g) {
    if (llama_decode(ctx, llama_batch_get_one(&next, 1)) != 0) {
      fprintf(stderr, "llama_run: decode failed\n");
      return 1;
    }
    next = top2(llama_get_logits_ith(ctx, -1), vocab, &m);
    greedy[g] = next;
  }
  const double t2 = now_s();
  printf("{\"n_prompt\": %d, \"vocab\": %d, \"threads\": %d, \"n_ubatch\": %u, ", n, vocab, threads,
         llama_n_ubatch(ctx));
  printf("\"prefill_seconds\": %.6f, \"prefill_tokens_per_s\": %.6f, ", t1 - t0, n / (t1 - t0));
  printf("\"decode_tokens_per_s\": %.6f, \"greedy\": [", n_gen > 1 ? (n_gen - 1) / (t2 - t1) : 0.0);
  for (int g = 0; g < n_gen; ++g) printf("%s%d", g ? ", " : "", greedy[g]);
  printf("]");
  if (all) {
    // Teacher-forced top-1 at every prompt position (the decoding steps replaced the outputs):
    // the prompt again, on an empty cache, untimed.
    llama_memory_clear(llama_get_memory(ctx), 1);
    if (llama_decode(ctx, b) != 0) {
      fprintf(stderr, "llama_run: decode failed\n");
      return 1;
    }
    float* margins = malloc(sizeof(float) * n);
    printf(", \"argmax\": [");
    for (int i = 0; i < n; ++i)
      printf("%s%d", i ? ", " : "", top2(llama_get_logits_ith(ctx, i), vocab, &margins[i]));
    printf("], \"margin\": [");
    for (int i = 0; i < n; ++i) printf("%s%.5g", i ? ", " : "", margins[i]);
    printf("]");
    free(margins);
  }
  printf("}\n");
  llama_batch_free(b);
  free(greedy);
  llama_free(ctx);
  llama_model_free(model);
  free(ids);
  return 0;
}
