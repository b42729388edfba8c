// train_demo: trains the shapes & voices model in C++ (libtorch) on clips made by make_clips.
// Inputs are produced by the inference graph's own preprocessing nodes (MediaSource,
// ImagePreprocess, LogMel: see pipeline.h), cached once, then the encoders and the fusion
// transformer (the same module classes the ImageEncoder / AudioEncoder / Generate nodes hold) are
// trained end to end with teacher-forced cross-entropy on the answer tokens.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "examples/shapes_voices/model.h"
#include "examples/shapes_voices/pipeline.h"
#include "examples/shapes_voices/rng.h"
#include "examples/shapes_voices/task.h"
#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/weights.h"

namespace fs = std::filesystem;
using namespace omni;
using namespace omni::demo;

namespace {

struct Options {
  std::string train, val, out = "models/shapes_voices", init;
  int steps = 1500, batch = 6, eval_every = 250, val_clips = 100, threads = 2;
  double lr = 1e-3, weight_decay = 0.01;
  uint64_t seed = 1;
  int max_clips = 0;
  bool quiet = false;
};

struct Sample {
  ClipInfo info;
  ClipTensors t;
  at::Tensor frames;  // [F, 3, S, S]
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void progress(const std::string& what, int done, int total, double secs,
              const std::string& extra = "") {
  const int width = 30;
  const int fill = total ? done * width / total : width;
  std::fprintf(stderr, "\r%s [%s%s] %d/%d %.0fs %s   ", what.c_str(),
               std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), done, total,
               secs, extra.c_str());
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

std::vector<Sample> load_set(const std::string& manifest, const DemoConfig& cfg, int limit,
                             const std::string& name) {
  auto clips = read_manifest(manifest);
  if (limit > 0 && int(clips.size()) > limit) clips.resize(size_t(limit));
  std::vector<Sample> out;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < clips.size(); ++i) {
    Sample s;
    s.info = clips[i];
    s.t = extract_clip(clips[i].file, cfg);
    if (s.t.frames.empty() || s.t.mels.empty())
      throw InputError(clips[i].file + ": expected video frames and audio for training");
    s.frames = at::stack(s.t.frames);
    out.push_back(std::move(s));
    progress("preprocess " + name, int(i + 1), int(clips.size()), since(t0));
  }
  return out;
}

// Prompt + teacher-forced answer for one (clip, question): inputs, positions and targets.
struct Seq {
  at::Tensor embeds;     // [L, d]
  at::Tensor positions;  // [3, L]
  at::Tensor targets;    // [L], -100 where no loss
};

Seq make_seq(ShapesVoicesImpl& m, const std::vector<TokenChunk>& video,
             const std::vector<TokenChunk>& audio, Question q, const std::string& answer) {
  const FusedSequence prompt = layout_prompt(video, audio, question_chunk(kQuestionText[int(q)]));
  const auto ans = answer_ids(answer);
  const int64_t lp = prompt.length(), na = int64_t(ans.size());
  // Inputs: prompt + answer[:-1]; answer token k sits at position next + k on every axis, as the
  // Generate node feeds generated tokens.
  const at::Tensor ans_in = at::tensor(std::vector<int64_t>(ans.begin(), ans.end() - 1), at::kLong);
  Seq s;
  s.embeds = at::cat({embed_sequence(*m.fusion, prompt)[0], m.fusion->embed_ids(ans_in)}, 0);
  const int64_t next = prompt.next_position();
  const at::Tensor ap = at::arange(next, next + na - 1, at::kLong).unsqueeze(0).expand({3, na - 1});
  s.positions = at::cat({prompt.positions, ap}, 1);
  s.targets = at::full({lp + na - 1}, -100, at::kLong);
  s.targets.slice(0, lp - 1, lp - 1 + na).copy_(at::tensor(ans, at::kLong));
  return s;
}

// Greedy answer through fusion's generate(), the Generate node's decoding loop.
std::string greedy(ShapesVoicesImpl& m, const Sample& s, Question q) {
  torch::NoGradGuard ng;
  auto video = encode_video(m, s.frames, s.t.frame_us, "clip/video");
  auto audio = encode_audio(m, s.t.mels, s.t.mel_us, "clip/audio");
  const FusedSequence prompt = layout_prompt(video, audio, question_chunk(kQuestionText[int(q)]));
  DecodeOptions d;
  d.max_new_tokens = m.config.max_answer_tokens;
  d.stop_tokens = {SpecialTokens{}.eos};
  const auto r = generate(*m.fusion, embed_sequence(*m.fusion, prompt), prompt.positions, d);
  return decode_byte_ids(r.tokens);
}

std::array<double, 4> evaluate(ShapesVoicesImpl& m, const std::vector<Sample>& val) {
  m.eval();
  std::array<double, 4> acc{};
  for (const auto& s : val)
    for (int q = 0; q < kNumQuestions; ++q)
      acc[q] += greedy(m, s, Question(q)) == answer_for(s.info, Question(q));
  for (auto& a : acc) a /= double(std::max<size_t>(1, val.size()));
  m.train();
  return acc;
}

std::string acc_str(const std::array<double, 4>& a) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "shape %.3f color %.3f spoken %.3f match %.3f", a[0], a[1], a[2],
                a[3]);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Trains the shapes & voices demo model (writes model.safetensors + config.json)"};
  Options o;
  app.add_option("--train", o.train, "training manifest.jsonl (from make_clips)")->required();
  app.add_option("--val", o.val, "validation manifest.jsonl (another seed)");
  app.add_option("--out", o.out, "output model directory");
  app.add_option("--steps", o.steps, "optimizer steps");
  app.add_option("--batch", o.batch, "clips per step (each with all four questions)");
  app.add_option("--lr", o.lr, "peak learning rate (AdamW, warmup + cosine)");
  app.add_option("--seed", o.seed, "seed for init and batch order");
  app.add_option("--eval-every", o.eval_every, "steps between validation runs (0 = end only)");
  app.add_option("--val-clips", o.val_clips, "validation clips used");
  app.add_option("--max-clips", o.max_clips, "use at most this many training clips (0 = all)");
  app.add_option("--threads", o.threads, "libtorch intra-op threads");
  app.add_option("--init", o.init, "start from this model directory's weights (continue training)");
  app.add_flag("--quiet", o.quiet, "less output");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto t_start = Clock::now();
    at::set_num_threads(o.threads);
    torch::manual_seed(int64_t(o.seed));
    DemoConfig cfg;
    auto train = load_set(o.train, cfg, o.max_clips, "train");
    std::vector<Sample> val;
    if (!o.val.empty()) val = load_set(o.val, cfg, o.val_clips, "val");
    const double prep_s = since(t_start);

    ShapesVoices model(cfg);
    if (!o.init.empty())
      load_weights(*model,
                   *SafeTensorsFile::open((fs::path(o.init) / "model.safetensors").string()));
    model->train();
    int64_t n_params = 0;
    for (const auto& p : model->parameters()) n_params += p.numel();
    std::cerr << "model: " << n_params << " parameters; " << train.size() << " training clips, "
              << val.size() << " validation clips\n";

    // No weight decay on norms, biases and embeddings-as-positions (1-D tensors).
    std::vector<at::Tensor> decay, no_decay;
    for (const auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
    torch::optim::AdamW opt(
        {torch::optim::OptimizerParamGroup(
             decay, std::make_unique<torch::optim::AdamWOptions>(
                        torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay))),
         torch::optim::OptimizerParamGroup(
             no_decay, std::make_unique<torch::optim::AdamWOptions>(
                           torch::optim::AdamWOptions(o.lr).weight_decay(0.0)))},
        torch::optim::AdamWOptions(o.lr));
    const int warmup = std::max(1, o.steps / 20);

    DetRng rng(o.seed);
    std::vector<size_t> order(train.size());
    std::iota(order.begin(), order.end(), 0);
    size_t cursor = order.size();
    auto next_clip = [&]() {
      if (cursor == order.size()) {  // Fisher-Yates with our own RNG: reproducible everywhere
        for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
        cursor = 0;
      }
      return order[cursor++];
    };

    const auto t_train = Clock::now();
    double ema = 0, first_loss = -1;
    std::array<double, 4> last_acc{};
    for (int step = 1; step <= o.steps; ++step) {
      const double lr =
          step <= warmup
              ? o.lr * step / warmup
              : o.lr * 0.5 * (1 + std::cos(M_PI * (step - warmup) / std::max(1, o.steps - warmup)));
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);

      std::vector<size_t> idx;
      for (int b = 0; b < o.batch; ++b) idx.push_back(next_clip());
      // One ViT forward for every frame of the batch, one audio forward per clip.
      std::vector<at::Tensor> frames;
      for (size_t i : idx) frames.push_back(train[i].frames);
      const at::Tensor all = at::cat(frames, 0);
      const at::Tensor vis = model->vision->forward(all);
      const VisualGrid g = model->vision->grid(all.size(2), all.size(3));
      std::vector<Seq> seqs;
      int64_t row = 0;
      for (size_t i : idx) {
        const Sample& s = train[i];
        std::vector<TokenChunk> video;
        for (size_t f = 0; f < s.t.frames.size(); ++f) {
          TokenChunk c;
          c.modality = Modality::kVideo;
          c.embeddings = vis[row++];
          c.start_us = c.end_us = s.t.frame_us[f];
          c.grid_h = g.h;
          c.grid_w = g.w;
          c.stream = "clip/video";
          video.push_back(std::move(c));
        }
        auto audio = encode_audio(*model, s.t.mels, s.t.mel_us, "clip/audio");
        for (int q = 0; q < kNumQuestions; ++q)
          seqs.push_back(
              make_seq(*model, video, audio, Question(q), answer_for(s.info, Question(q))));
      }
      int64_t L = 0;
      for (const auto& s : seqs) L = std::max(L, s.embeds.size(0));
      // Right padding: causal attention keeps real tokens blind to it; its targets are ignored.
      std::vector<at::Tensor> e, p, t;
      for (const auto& s : seqs) {
        const int64_t pad = L - s.embeds.size(0);
        e.push_back(at::constant_pad_nd(s.embeds, {0, 0, 0, pad}));
        p.push_back(at::constant_pad_nd(s.positions, {0, pad}));
        t.push_back(at::constant_pad_nd(s.targets, {0, pad}, -100));
      }
      const at::Tensor h = model->fusion->forward(at::stack(e), at::stack(p, 1));
      const at::Tensor logits = model->fusion->lm_logits(h);
      const at::Tensor loss = torch::nn::functional::cross_entropy(
          logits.reshape({-1, logits.size(-1)}), at::stack(t).reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
      opt.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      opt.step();

      const double l = loss.item<double>();
      if (first_loss < 0) first_loss = l;
      ema = step == 1 ? l : 0.95 * ema + 0.05 * l;
      if (!o.quiet)
        progress(
            "train", step, o.steps, since(t_train),
            "loss " + std::to_string(ema).substr(0, 6) + " lr " + std::to_string(lr).substr(0, 8));
      if (!val.empty() && ((o.eval_every > 0 && step % o.eval_every == 0) || step == o.steps)) {
        last_acc = evaluate(*model, val);
        std::fprintf(stderr, "\nstep %d: loss %.4f, validation accuracy: %s\n", step, ema,
                     acc_str(last_acc).c_str());
      }
      std::printf("step %d loss %.6f\n", step, l);
    }
    const double train_s = since(t_train);

    fs::create_directories(o.out);
    const std::string weights = (fs::path(o.out) / "model.safetensors").string();
    TensorMap tensors;
    for (auto& [k, v] : module_tensors(*model)) tensors[k] = v.detach().to(at::kHalf);
    save_safetensors(
        weights, tensors,
        {{"format", "pt"}, {"model", "shapes_voices"}, {"config", cfg.to_json().dump()}});
    std::ofstream(fs::path(o.out) / "config.json") << cfg.to_json().dump(2) << "\n";

    nlohmann::ordered_json summary;
    summary["parameters"] = n_params;
    summary["train_clips"] = train.size();
    summary["val_clips"] = val.size();
    summary["steps"] = o.steps;
    summary["batch_clips"] = o.batch;
    summary["seed"] = o.seed;
    summary["first_loss"] = first_loss;
    summary["final_loss_ema"] = ema;
    summary["preprocess_seconds"] = prep_s;
    summary["train_seconds"] = train_s;
    summary["total_seconds"] = since(t_start);
    if (!val.empty())
      for (int q = 0; q < kNumQuestions; ++q)
        summary["val_accuracy"][kQuestionKey[q]] = last_acc[q];
    std::ofstream(fs::path(o.out) / "training.json") << summary.dump(2) << "\n";
    std::cerr << "wrote " << weights << "\n" << summary.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "train_demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
