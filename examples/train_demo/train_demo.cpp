// train_demo: trains the shapes & voices model in C++ (libtorch) on clips made by make_clips.
// Inputs are produced by the inference graph's own preprocessing nodes (MediaSource,
// ImagePreprocess, LogMel: see pipeline.h), cached once, then the encoders and the fusion
// transformer (the same module classes the ImageEncoder / AudioEncoder / Generate nodes hold) are
// trained with teacher-forced cross-entropy on the answer tokens. Two phases in one run: an
// encoder warm-up (training-only linear heads on the pooled vision / audio tokens predict the
// shape, its colour and the spoken colour; no fusion forward, so steps are cheap), then end to end
// (answer loss + the same auxiliary loss). The auxiliary heads are never saved with the model.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "fusion/fusion_nodes.h"
#include "fusion/heads.h"
#include "modalities/common/safetensors.h"
#include "modalities/common/torch_compat.h"
#include "modalities/common/weights.h"
#include "models/shapes_voices/model.h"
#include "models/shapes_voices/pipeline.h"
#include "models/shapes_voices/rng.h"
#include "models/shapes_voices/task.h"

namespace fs = std::filesystem;
using namespace omni;
using namespace omni::demo;

namespace {

struct Options {
  std::vector<std::string> train;
  std::string val, out = "models/shapes_voices", init, config;
  std::vector<std::string> val_extra;
  int steps = 1500, batch = 6, eval_every = 250, val_clips = 100, threads = 2;
  int encoder_steps = 0, encoder_batch = 16, encoder_eval_every = 0, questions = 4;
  double lr = 1e-3, encoder_lr = 2e-3, weight_decay = 0.01;
  double aux_weight = 0.5, drop_audio = 0.0, first_token_weight = 0.0, hflip = 0.0;
  double aux_token_weight = 0.0;
  double encoder_aux_token_weight = -1;  // phase 1's; < 0: aux_token_weight
  // Geometric augmentation (per clip, every frame alike): with probability `geo`, the preprocessed
  // frames are resampled with a random aspect change (log-uniform in [geo_aspect_min,
  // geo_aspect_max]) and overall scale (log-uniform in [geo_scale_min, geo_scale_max]).
  double geo = 0.0, geo_aspect_min = 0.6, geo_aspect_max = 1.6, geo_scale_min = 0.8,
         geo_scale_max = 1.1;
  std::vector<double> question_weights{1, 1, 1, 1};
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

// Training-only linear heads on max-pooled encoder tokens: shape (3) + colour (4) per video
// frame, spoken colour (4) per clip. A direct signal into each encoder, which the answer loss
// alone gives only weakly; not part of the model (never saved). Max rather than mean pooling: the
// shape and the word each cover a few tokens, and a probe of the ViT on synthetic frames learned
// shape within 300 steps with max pooling (98 %) against 78 % with mean pooling.
struct AuxHeadsImpl : torch::nn::Module {
  explicit AuxHeadsImpl(int64_t dim) {
    vision = register_module("vision", torch::nn::Linear(dim, 7));
    audio = register_module("audio", torch::nn::Linear(dim, 4));
  }
  torch::nn::Linear vision{nullptr}, audio{nullptr};
};
TORCH_MODULE(AuxHeads);

// Encoder outputs of a batch of clips: one ViT forward over every frame, one audio forward per
// distinct mel length (normally one for the whole batch).
struct Encoded {
  at::Tensor vis;                  // [sum F, N, d]
  std::vector<at::Tensor> audio;   // per clip [Na, d]
  std::vector<int64_t> first_row;  // per clip, its first frame in vis
};

// A training clip's augmentation: left-right mirror (every shape is symmetric) and a stretch of
// the picture by (sx, sy) about its centre (1 = unchanged; < 1 shrinks the content).
struct Augment {
  bool flip = false;
  double sx = 1, sy = 1;
};

Augment draw_augment(const Options& o, DetRng& rng) {
  Augment a;
  a.flip = o.hflip > 0 && rng.uniform() < o.hflip;
  if (o.geo > 0 && rng.uniform() < o.geo) {
    const double aspect =
        std::exp(rng.uniform(std::log(o.geo_aspect_min), std::log(o.geo_aspect_max)));
    const double scale =
        std::exp(rng.uniform(std::log(o.geo_scale_min), std::log(o.geo_scale_max)));
    a.sx = scale * std::sqrt(aspect);
    a.sy = scale / std::sqrt(aspect);
  }
  return a;
}

// Frames [F, 3, S, S] as another video's preprocessing would give them: a clip of another aspect
// ratio is squashed to S x S differently (siglip mode), so its shapes are stretched by that
// ratio. Bilinear resampling; the uniform background fills the border (border padding).
at::Tensor apply_augment(const at::Tensor& frames, const Augment& a) {
  at::Tensor x = a.flip ? frames.flip({3}) : frames;
  if (a.sx == 1 && a.sy == 1) return x;
  const at::Tensor theta =
      at::tensor({float(1 / a.sx), 0.f, 0.f, 0.f, float(1 / a.sy), 0.f}, at::kFloat)
          .reshape({1, 2, 3})
          .expand({x.size(0), 2, 3});
  const at::Tensor grid = at::affine_grid_generator(theta, x.sizes(), /*align_corners=*/false);
  return at::grid_sampler(x, grid, /*bilinear*/ 0, /*border*/ 1, /*align_corners=*/false);
}

Encoded encode_batch(ShapesVoicesImpl& m, const std::vector<const Sample*>& clips,
                     const std::vector<Augment>& aug = {}) {
  Encoded e;
  std::vector<at::Tensor> frames;
  int64_t row = 0;
  for (size_t i = 0; i < clips.size(); ++i) {
    const Sample* s = clips[i];
    frames.push_back(i < aug.size() ? apply_augment(s->frames, aug[i]) : s->frames);
    e.first_row.push_back(row);
    row += s->frames.size(0);
  }
  e.vis = m.vision->forward(at::cat(frames, 0));
  e.audio.resize(clips.size());
  std::vector<bool> done(clips.size(), false);
  for (size_t i = 0; i < clips.size(); ++i) {
    if (done[i]) continue;
    const int64_t T = clips[i]->t.mels[0].size(1);
    std::vector<size_t> group;
    std::vector<at::Tensor> mels;
    for (size_t j = i; j < clips.size(); ++j)
      if (!done[j] && clips[j]->t.mels.size() == 1 && clips[j]->t.mels[0].size(1) == T) {
        group.push_back(j);
        mels.push_back(clips[j]->t.mels[0]);
        done[j] = true;
      }
    if (group.empty()) {  // several mel windows: their tokens concatenated
      std::vector<at::Tensor> parts;
      for (const auto& mel : clips[i]->t.mels) parts.push_back(m.audio->forward(mel));
      e.audio[i] = at::cat(parts, 0);
      done[i] = true;
      continue;
    }
    const at::Tensor out = m.audio->forward(at::stack(mels));
    for (size_t k = 0; k < group.size(); ++k) e.audio[group[k]] = out[int64_t(k)];
  }
  return e;
}

struct AuxResult {
  at::Tensor loss;
  std::array<double, 3> correct{};  // shape, colour (per frame), spoken (per clip)
  std::array<double, 3> total{};
};

// `token_weight` > 0 adds the same heads' loss on every vision token, so that each token (not only
// the pooled maximum) carries the shape and its colour, wherever the fusion's attention looks.
AuxResult aux_loss(AuxHeadsImpl& heads, const Encoded& e, const std::vector<const Sample*>& clips,
                   double token_weight = 0.0) {
  namespace F = torch::nn::functional;
  std::vector<int64_t> shape, color, spoken;
  for (const Sample* s : clips) {
    for (int64_t f = 0; f < s->frames.size(0); ++f) {
      shape.push_back(s->info.shape);
      color.push_back(s->info.color);
    }
    spoken.push_back(s->info.spoken);
  }
  const at::Tensor vl = heads.vision(std::get<0>(e.vis.max(1)));  // [sum F, 7]
  std::vector<at::Tensor> pooled;
  for (const auto& a : e.audio) pooled.push_back(std::get<0>(a.max(0)));
  const at::Tensor al = heads.audio(at::stack(pooled));  // [B, 4]
  const at::Tensor ts = at::tensor(shape, at::kLong), tc = at::tensor(color, at::kLong),
                   tp = at::tensor(spoken, at::kLong);
  const at::Tensor ls = vl.slice(1, 0, 3), lc = vl.slice(1, 3, 7);
  AuxResult r;
  r.loss = F::cross_entropy(ls, ts) + F::cross_entropy(lc, tc) + F::cross_entropy(al, tp);
  if (token_weight > 0) {
    const int64_t n = e.vis.size(1);
    const at::Tensor vt = heads.vision(e.vis).reshape({-1, 7});  // [sum F * N, 7]
    r.loss = r.loss + token_weight * (F::cross_entropy(vt.slice(1, 0, 3), ts.repeat_interleave(n)) +
                                      F::cross_entropy(vt.slice(1, 3, 7), tc.repeat_interleave(n)));
  }
  r.correct = {ls.argmax(1).eq(ts).sum().item<double>(), lc.argmax(1).eq(tc).sum().item<double>(),
               al.argmax(1).eq(tp).sum().item<double>()};
  r.total = {double(ts.size(0)), double(tc.size(0)), double(tp.size(0))};
  return r;
}

// Linear-probe accuracy of the auxiliary heads on the validation clips.
std::array<double, 3> aux_accuracy(ShapesVoicesImpl& m, AuxHeadsImpl& heads,
                                   const std::vector<Sample>& val) {
  torch::NoGradGuard ng;
  m.eval();
  std::array<double, 3> c{}, t{};
  for (size_t i = 0; i < val.size(); i += 16) {
    std::vector<const Sample*> clips;
    for (size_t j = i; j < std::min(val.size(), i + 16); ++j) clips.push_back(&val[j]);
    const AuxResult r = aux_loss(heads, encode_batch(m, clips), clips);
    for (int k = 0; k < 3; ++k) c[k] += r.correct[k], t[k] += r.total[k];
  }
  m.train();
  return {c[0] / std::max(1.0, t[0]), c[1] / std::max(1.0, t[1]), c[2] / std::max(1.0, t[2])};
}

// Greedy answer through fusion's generate(), the Generate node's decoding loop. Without audio the
// prompt has no audio tokens, like the graph for a clip without an audio track.
std::string greedy(ShapesVoicesImpl& m, const Sample& s, Question q, bool with_audio = true) {
  torch::NoGradGuard ng;
  auto video = encode_video(m, s.frames, s.t.frame_us, "clip/video");
  std::vector<TokenChunk> audio;
  if (with_audio) audio = encode_audio(m, s.t.mels, s.t.mel_us, "clip/audio");
  const FusedSequence prompt = layout_prompt(video, audio, question_chunk(kQuestionText[int(q)]));
  DecodeOptions d;
  d.max_new_tokens = m.config.max_answer_tokens;
  d.stop_tokens = {SpecialTokens{}.eos};
  const auto r = generate(*m.fusion, embed_sequence(*m.fusion, prompt), prompt.positions, d);
  return decode_byte_ids(r.tokens);
}

// Accuracy per question, then the shape question on the same clips without their audio.
std::array<double, 5> evaluate(ShapesVoicesImpl& m, const std::vector<Sample>& val) {
  m.eval();
  std::array<double, 5> acc{};
  for (const auto& s : val) {
    for (int q = 0; q < kNumQuestions; ++q)
      acc[q] += greedy(m, s, Question(q)) == answer_for(s.info, Question(q));
    acc[4] += greedy(m, s, Question::kShape, false) == answer_for(s.info, Question::kShape);
  }
  for (auto& a : acc) a /= double(std::max<size_t>(1, val.size()));
  m.train();
  return acc;
}

std::string acc_str(const std::array<double, 5>& a) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "shape %.3f color %.3f spoken %.3f match %.3f (shape without audio %.3f)", a[0],
                a[1], a[2], a[3], a[4]);
  return buf;
}

// Warmup (5 %) then cosine from `peak` to 0 over `total` steps.
double schedule(double peak, int step, int total) {
  const int warmup = std::max(1, total / 20);
  if (step <= warmup) return peak * step / warmup;
  return peak * 0.5 * (1 + std::cos(M_PI * (step - warmup) / std::max(1, total - warmup)));
}

// Cycles through a training set in reshuffled epochs (Fisher-Yates with our own RNG, so the order
// is the same with any standard library).
class ClipOrder {
 public:
  ClipOrder(size_t n, DetRng& rng) : order_(n), rng_(rng) {
    std::iota(order_.begin(), order_.end(), 0);
    cursor_ = n;
  }
  size_t next() {
    if (cursor_ == order_.size()) {
      for (size_t i = order_.size() - 1; i > 0; --i)
        std::swap(order_[i], order_[rng_.below(i + 1)]);
      cursor_ = 0;
    }
    return order_[cursor_++];
  }

 private:
  std::vector<size_t> order_;
  DetRng& rng_;
  size_t cursor_;
};

// Comma-separated numbers ("3,1,1,1.5"); false when an item is not a number.
bool parse_numbers(const std::string& text, std::vector<double>& out) {
  out.clear();
  std::stringstream ss(text);
  try {
    for (std::string item; std::getline(ss, item, ',');) {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// "min,max" with 0 < min <= max.
bool parse_range(const std::string& text, double& lo, double& hi) {
  std::vector<double> v;
  if (!parse_numbers(text, v) || v.size() != 2) return false;
  lo = v[0];
  hi = v[1];
  return lo > 0 && lo <= hi;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Trains the shapes & voices demo model (writes model.safetensors + config.json)"};
  Options o;
  std::string geo_aspect = "0.6,1.6", geo_scale = "0.8,1.1";
  app.add_option("--train", o.train,
                 "training manifest.jsonl (from make_clips); several may be given")
      ->required();
  app.add_option("--val", o.val, "validation manifest.jsonl (another seed)");
  app.add_option("--out", o.out, "output model directory");
  app.add_option("--config", o.config, "model config.json to train (default: built-in sizes)");
  app.add_option("--encoder-steps", o.encoder_steps,
                 "phase 1: encoder warm-up steps on the auxiliary heads only (no fusion)");
  app.add_option("--encoder-batch", o.encoder_batch, "phase 1: clips per step");
  app.add_option("--encoder-lr", o.encoder_lr, "phase 1: peak learning rate");
  app.add_option("--encoder-eval-every", o.encoder_eval_every,
                 "phase 1: steps between linear-probe validations (0 = end only)");
  app.add_option("--steps", o.steps, "phase 2: end-to-end optimizer steps");
  app.add_option("--batch", o.batch, "phase 2: clips per step");
  app.add_option("--questions", o.questions,
                 "phase 2: questions per clip and step (1-4, drawn at random)");
  app.add_option("--lr", o.lr, "phase 2: peak learning rate (AdamW, warmup + cosine)");
  app.add_option("--aux-weight", o.aux_weight, "phase 2: weight of the auxiliary heads' loss");
  app.add_option("--drop-audio", o.drop_audio,
                 "phase 2: probability that a clip is shown without its audio (visual questions)");
  app.add_option("--first-token-weight", o.first_token_weight,
                 "phase 2: extra loss weight on each answer's first token");
  app.add_option(
      "--hflip", o.hflip,
      "probability that a training clip's frames are mirrored left-right (augmentation)");
  app.add_option("--aux-token-weight", o.aux_token_weight,
                 "weight of the auxiliary vision loss on every token (besides the pooled one)");
  app.add_option("--geo", o.geo,
                 "probability that a training clip is stretched (another aspect ratio and scale)");
  app.add_option("--geo-aspect", geo_aspect, "stretch: aspect-change range \"min,max\"");
  app.add_option("--geo-scale", geo_scale, "stretch: scale range \"min,max\"");
  app.add_option("--encoder-aux-token-weight", o.encoder_aux_token_weight,
                 "phase 1: weight of the per-token auxiliary vision loss (default: "
                 "--aux-token-weight)");
  std::string question_weights = "1,1,1,1";
  app.add_option("--question-weights", question_weights,
                 "phase 2: relative draw weights of the questions, \"shape,color,spoken,match\"");
  app.add_option("--seed", o.seed, "seed for init, batch order and question draws");
  app.add_option("--eval-every", o.eval_every, "phase 2: steps between validations (0 = end)");
  app.add_option("--val-clips", o.val_clips, "validation clips used (per validation set)");
  app.add_option("--val-extra", o.val_extra,
                 "more validation manifests (e.g. clips re-encoded at another size), evaluated and "
                 "reported alongside --val; several may be given");
  app.add_option("--max-clips", o.max_clips, "use at most this many training clips (0 = all)");
  app.add_option("--threads", o.threads, "libtorch intra-op threads");
  app.add_option("--init", o.init, "start from this model directory's weights (continue training)");
  app.add_flag("--quiet", o.quiet, "less output");
  CLI11_PARSE(app, argc, argv);
  o.questions = std::clamp(o.questions, 1, kNumQuestions);
  if (!parse_numbers(question_weights, o.question_weights) ||
      o.question_weights.size() != size_t(kNumQuestions)) {
    std::cerr << "train_demo: --question-weights needs four comma-separated numbers\n";
    return 2;
  }

  if (!parse_range(geo_aspect, o.geo_aspect_min, o.geo_aspect_max) ||
      !parse_range(geo_scale, o.geo_scale_min, o.geo_scale_max)) {
    std::cerr << "train_demo: --geo-aspect / --geo-scale need \"min,max\" with 0 < min <= max\n";
    return 2;
  }

  try {
    namespace F = torch::nn::functional;
    const auto t_start = Clock::now();
    set_compute_threads(o.threads);
    torch::manual_seed(int64_t(o.seed));
    const DemoConfig cfg = o.config.empty() ? DemoConfig{} : DemoConfig::load(o.config);
    std::vector<Sample> train;
    for (const auto& manifest : o.train) {
      const int left = o.max_clips > 0 ? o.max_clips - int(train.size()) : 0;
      if (o.max_clips > 0 && left <= 0) break;
      auto part = load_set(manifest, cfg, left, "train");
      std::move(part.begin(), part.end(), std::back_inserter(train));
    }
    std::vector<Sample> val;
    if (!o.val.empty()) val = load_set(o.val, cfg, o.val_clips, "val");
    std::vector<std::vector<Sample>> extra;
    for (const auto& manifest : o.val_extra)
      extra.push_back(load_set(manifest, cfg, o.val_clips, "val " + manifest));
    std::vector<std::array<double, 3>> extra_probe(extra.size());
    std::vector<std::array<double, 5>> extra_acc(extra.size());
    const double prep_s = since(t_start);

    ShapesVoices model(cfg);
    AuxHeads heads(cfg.dim);
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
    for (const auto& p : heads->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
    torch::optim::AdamW opt(
        {torch::optim::OptimizerParamGroup(
             decay, std::make_unique<torch::optim::AdamWOptions>(
                        torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay))),
         torch::optim::OptimizerParamGroup(
             no_decay, std::make_unique<torch::optim::AdamWOptions>(
                           torch::optim::AdamWOptions(o.lr).weight_decay(0.0)))},
        torch::optim::AdamWOptions(o.lr));
    auto set_lr = [&](double lr) {
      for (auto& g : opt.param_groups()) g.options().set_lr(lr);
    };
    auto all_params = model->parameters();
    for (const auto& p : heads->parameters()) all_params.push_back(p);

    DetRng rng(o.seed);
    ClipOrder order(train.size(), rng);
    nlohmann::ordered_json summary;

    // The next n training clips in epoch order, each with its augmentation drawn.
    auto draw_batch = [&](int n, std::vector<const Sample*>& clips, std::vector<Augment>& aug) {
      for (int b = 0; b < n; ++b) {
        clips.push_back(&train[order.next()]);
        aug.push_back(draw_augment(o, rng));
      }
    };

    // Phase 1: encoders + auxiliary heads only.
    const double encoder_token_weight =
        o.encoder_aux_token_weight >= 0 ? o.encoder_aux_token_weight : o.aux_token_weight;
    const auto t_enc = Clock::now();
    std::array<double, 3> probe{};
    for (int step = 1; step <= o.encoder_steps; ++step) {
      const double lr = schedule(o.encoder_lr, step, o.encoder_steps);
      set_lr(lr);
      std::vector<const Sample*> clips;
      std::vector<Augment> aug;
      draw_batch(o.encoder_batch, clips, aug);
      const AuxResult r =
          aux_loss(*heads, encode_batch(*model, clips, aug), clips, encoder_token_weight);
      opt.zero_grad();
      r.loss.backward();
      torch::nn::utils::clip_grad_norm_(all_params, 1.0);
      opt.step();
      const double l = r.loss.item<double>();
      if (!o.quiet)
        progress("encoders", step, o.encoder_steps, since(t_enc),
                 "aux loss " + std::to_string(l).substr(0, 6));
      std::printf("encoder step %d aux loss %.6f\n", step, l);
      std::fflush(stdout);
      if (!val.empty() && ((o.encoder_eval_every > 0 && step % o.encoder_eval_every == 0) ||
                           step == o.encoder_steps)) {
        probe = aux_accuracy(*model, *heads, val);
        std::fprintf(stderr,
                     "\nencoder step %d: validation probe: shape %.3f color %.3f spoken %.3f\n",
                     step, probe[0], probe[1], probe[2]);
        for (size_t k = 0; k < extra.size(); ++k) {
          extra_probe[k] = aux_accuracy(*model, *heads, extra[k]);
          std::fprintf(stderr, "  %s: probe: shape %.3f color %.3f spoken %.3f\n",
                       o.val_extra[k].c_str(), extra_probe[k][0], extra_probe[k][1],
                       extra_probe[k][2]);
        }
      }
    }
    const double enc_s = since(t_enc);

    // Phase 2: end to end (answer loss + auxiliary loss). Optimizer moments carry over.
    const auto t_train = Clock::now();
    double ema = 0, first_loss = -1;
    std::array<double, 5> last_acc{};
    for (int step = 1; step <= o.steps; ++step) {
      const double lr = schedule(o.lr, step, o.steps);
      set_lr(lr);

      std::vector<const Sample*> clips;
      std::vector<Augment> aug;
      draw_batch(o.batch, clips, aug);
      const Encoded enc = encode_batch(*model, clips, aug);
      const VisualGrid g = model->vision->grid(clips[0]->frames.size(2), clips[0]->frames.size(3));
      std::vector<TrainingExample> seqs;
      for (size_t c = 0; c < clips.size(); ++c) {
        const Sample& s = *clips[c];
        // The chunks the encoder nodes would emit (model.h), from this step's batched forwards.
        const std::vector<TokenChunk> video =
            video_chunks(enc.vis.slice(0, enc.first_row[c], enc.first_row[c] + s.frames.size(0)), g,
                         s.t.frame_us, "clip/video");
        // Without audio (as for a clip with no audio track) only visual questions are asked.
        const bool drop = o.drop_audio > 0 && rng.uniform() < o.drop_audio;
        std::vector<TokenChunk> audio;
        if (!drop) {
          int64_t mel_frames = 0;
          for (const auto& mel : s.t.mels) mel_frames += mel.size(1);
          audio.push_back(audio_chunk(enc.audio[c], s.t.mel_us[0], mel_frames, "clip/audio"));
        }
        // Draw `questions` distinct questions by weight (without replacement).
        std::vector<int> pool, qs;
        for (int q = 0; q < kNumQuestions; ++q)
          if (!drop || !kQuestionNeedsAudio[size_t(q)]) pool.push_back(q);
        while (!pool.empty() && int(qs.size()) < o.questions) {
          double total = 0;
          for (int q : pool) total += o.question_weights[size_t(q)];
          double u = rng.uniform() * total;
          size_t k = 0;
          while (k + 1 < pool.size() && u >= o.question_weights[size_t(pool[k])])
            u -= o.question_weights[size_t(pool[k++])];
          qs.push_back(pool[k]);
          pool.erase(pool.begin() + int64_t(k));
        }
        for (int q : qs)
          seqs.push_back(
              training_example(*model, video, audio, q, answer_for(s.info, Question(q))));
      }
      int64_t L = 0;
      for (const auto& s : seqs) L = std::max(L, s.embeds.size(0));
      // Right padding: causal attention keeps real tokens blind to it; its targets are ignored.
      std::vector<at::Tensor> e, p, t, w;
      for (const auto& s : seqs) {
        const int64_t pad = L - s.embeds.size(0);
        e.push_back(at::constant_pad_nd(s.embeds, {0, 0, 0, pad}));
        p.push_back(at::constant_pad_nd(s.positions, {0, pad}));
        t.push_back(at::constant_pad_nd(s.targets, {0, pad}, -100));
        at::Tensor wt = s.targets.ne(-100).to(at::kFloat);
        wt[s.first] += o.first_token_weight;
        w.push_back(at::constant_pad_nd(wt, {0, pad}));
      }
      const at::Tensor h = model->fusion->forward(at::stack(e), at::stack(p, 1));
      const at::Tensor logits = model->fusion->lm_logits(h);
      const at::Tensor weights = at::stack(w).reshape({-1});
      const at::Tensor ce =
          F::cross_entropy(logits.reshape({-1, logits.size(-1)}), at::stack(t).reshape({-1}),
                           F::CrossEntropyFuncOptions().ignore_index(-100).reduction(torch::kNone));
      const at::Tensor lm_loss = (ce * weights).sum() / weights.sum();
      at::Tensor loss = lm_loss;
      if (o.aux_weight > 0)
        loss = loss + o.aux_weight * aux_loss(*heads, enc, clips, o.aux_token_weight).loss;
      opt.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(all_params, 1.0);
      opt.step();

      const double l = lm_loss.item<double>();
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
        for (size_t k = 0; k < extra.size(); ++k) {
          extra_acc[k] = evaluate(*model, extra[k]);
          std::fprintf(stderr, "  %s: %s\n", o.val_extra[k].c_str(), acc_str(extra_acc[k]).c_str());
        }
      }
      std::printf("step %d loss %.6f\n", step, l);
      std::fflush(stdout);
    }
    const double train_s = since(t_train);

    fs::create_directories(o.out);
    const std::string weights = (fs::path(o.out) / "model.safetensors").string();
    TensorMap tensors;  // the model only: the auxiliary heads are not part of it
    for (auto& [k, v] : module_tensors(*model)) tensors[k] = v.detach().to(at::kHalf);
    save_safetensors(
        weights, tensors,
        {{"format", "pt"}, {"model", "shapes_voices"}, {"config", cfg.to_json().dump()}});
    std::ofstream(fs::path(o.out) / "config.json") << cfg.to_json().dump(2) << "\n";

    summary["parameters"] = n_params;
    summary["train_clips"] = train.size();
    summary["train_manifests"] = o.train;
    summary["val_clips"] = val.size();
    summary["seed"] = o.seed;
    summary["threads"] = o.threads;
    summary["encoder_steps"] = o.encoder_steps;
    summary["encoder_batch_clips"] = o.encoder_batch;
    summary["encoder_lr"] = o.encoder_lr;
    summary["steps"] = o.steps;
    summary["batch_clips"] = o.batch;
    summary["questions_per_clip"] = o.questions;
    summary["lr"] = o.lr;
    summary["aux_weight"] = o.aux_weight;
    summary["drop_audio"] = o.drop_audio;
    summary["first_token_weight"] = o.first_token_weight;
    summary["hflip"] = o.hflip;
    summary["aux_token_weight"] = o.aux_token_weight;
    summary["encoder_aux_token_weight"] = encoder_token_weight;
    summary["geo"] = o.geo;
    summary["geo_aspect"] = {o.geo_aspect_min, o.geo_aspect_max};
    summary["geo_scale"] = {o.geo_scale_min, o.geo_scale_max};
    summary["question_weights"] = o.question_weights;
    summary["first_loss"] = first_loss;
    summary["final_loss_ema"] = ema;
    summary["preprocess_seconds"] = prep_s;
    summary["encoder_seconds"] = enc_s;
    summary["train_seconds"] = train_s;
    summary["total_seconds"] = since(t_start);
    if (!val.empty()) {
      if (o.encoder_steps > 0) {
        summary["encoder_probe_accuracy"]["shape"] = probe[0];
        summary["encoder_probe_accuracy"]["color"] = probe[1];
        summary["encoder_probe_accuracy"]["spoken"] = probe[2];
      }
      if (o.steps > 0) {
        for (int q = 0; q < kNumQuestions; ++q)
          summary["val_accuracy"][kQuestionKey[q]] = last_acc[q];
        summary["val_accuracy"]["shape_without_audio"] = last_acc[4];
      }
    }
    for (size_t k = 0; k < extra.size(); ++k) {
      auto& j = summary["extra_validation"][o.val_extra[k]];
      j["clips"] = extra[k].size();
      if (o.encoder_steps > 0)
        j["encoder_probe_accuracy"] = {{"shape", extra_probe[k][0]},
                                       {"color", extra_probe[k][1]},
                                       {"spoken", extra_probe[k][2]}};
      if (o.steps > 0) {
        for (int q = 0; q < kNumQuestions; ++q)
          j["val_accuracy"][kQuestionKey[q]] = extra_acc[k][q];
        j["val_accuracy"]["shape_without_audio"] = extra_acc[k][4];
      }
    }
    std::ofstream(fs::path(o.out) / "training.json") << summary.dump(2) << "\n";
    std::cerr << "wrote " << weights << "\n" << summary.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "train_demo: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
