//! The networks as tables ([`LAYERS`], [`LAYERS_BN`]), one row per Keras
//! layer, from which the rest is derived: the parameter tensors (names,
//! sizes, initialisers — llm.c's `fill_in_parameter_sizes`), the dropout
//! rates, the activated layers the diagnostics report on, the book's
//! description, and each network's plan (`plan.rs`), over which the
//! passes run on either device. Adding a network is a table here; adding a
//! kind of layer is a row kind here, its step in `plan.rs` and its
//! operation on each device (`pass::Ops`).

use crate::engine::cpu::conv::Conv as ConvShape;

/// One layer of the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// A convolution, stride 1: `cout` filters of `k × k`, `pad` zeros on
    /// each side ("same" when pad = (k − 1)/2, "valid" when 0), with a bias
    /// unless a batch normalisation follows.
    Conv { name: &'static str, cout: usize, k: usize, pad: usize, bias: bool },
    /// Batch normalisation of the previous layer's channels (Keras': γ and
    /// β learned, moving mean and variance, momentum 0.99, ε = 1e-3).
    BatchNorm { name: &'static str },
    /// The activation function under study, on the previous layer's output.
    Activation,
    /// 2 × 2 max pooling, stride 2 (an odd last row or column is dropped).
    MaxPool,
    /// Dropout at this rate while training.
    Dropout(f32),
    /// NHWC → one vector per sample.
    Flatten,
    /// A fully connected layer, with a bias unless a batch normalisation follows.
    Dense { name: &'static str, out: usize, bias: bool },
}

use Layer::*;

/// The input: height, width, channels (NHWC, values in [0, 1]).
pub(super) const INPUT: [usize; 3] = [32, 32, 3];

/// The article's Keras `Sequential`, layer by layer (softmax is the loss's).
pub const LAYERS: [Layer; 17] = [
    Conv { name: "conv1", cout: 32, k: 3, pad: 1, bias: true },
    Activation,
    Conv { name: "conv2", cout: 32, k: 3, pad: 0, bias: true },
    Activation,
    MaxPool,
    Dropout(0.25),
    Conv { name: "conv3", cout: 64, k: 3, pad: 1, bias: true },
    Activation,
    Conv { name: "conv4", cout: 64, k: 3, pad: 0, bias: true },
    Activation,
    MaxPool,
    Dropout(0.25),
    Flatten,
    Dense { name: "dense1", out: 512, bias: true },
    Activation,
    Dropout(0.5),
    Dense { name: "dense2", out: 10, bias: true },
];

/// The article's network with batch normalisation after each convolution
/// and after dense1, before the activation; those layers lose their bias
/// (β takes its place), as Keras users write it.
pub const LAYERS_BN: [Layer; 22] = [
    Conv { name: "conv1", cout: 32, k: 3, pad: 1, bias: false },
    BatchNorm { name: "bn1" },
    Activation,
    Conv { name: "conv2", cout: 32, k: 3, pad: 0, bias: false },
    BatchNorm { name: "bn2" },
    Activation,
    MaxPool,
    Dropout(0.25),
    Conv { name: "conv3", cout: 64, k: 3, pad: 1, bias: false },
    BatchNorm { name: "bn3" },
    Activation,
    Conv { name: "conv4", cout: 64, k: 3, pad: 0, bias: false },
    BatchNorm { name: "bn4" },
    Activation,
    MaxPool,
    Dropout(0.25),
    Flatten,
    Dense { name: "dense1", out: 512, bias: false },
    BatchNorm { name: "bn5" },
    Activation,
    Dropout(0.5),
    Dense { name: "dense2", out: 10, bias: true },
];

/// The networks a study can name (`architecture` in its file). Part of a
/// run's protocol, hence of its identity; the article's keeps the plain
/// protocol folders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    #[default]
    Article,
    ArticleBn,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::Article, Architecture::ArticleBn];

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Article => "article",
            Architecture::ArticleBn => "article-bn",
        }
    }

    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn layers(self) -> &'static [Layer] {
        match self {
            Architecture::Article => &LAYERS,
            Architecture::ArticleBn => &LAYERS_BN,
        }
    }

    /// sha256 of the layer table in a fixed spelling (one line per layer):
    /// `run.json` records it, so a network edited under an old name shows.
    pub fn sha256(self) -> String {
        let number = |r: f32| crate::activation::expr::canonical_number(r as f64);
        let mut text = format!("input {}x{}x{}\n", INPUT[0], INPUT[1], INPUT[2]);
        for l in self.layers() {
            let line = match *l {
                Conv { name, cout, k, pad, bias } => format!("conv {name} out={cout} k={k} pad={pad} {}", if bias { "bias" } else { "no bias" }),
                BatchNorm { name } => format!("batchnorm {name} momentum={} epsilon={}", number(0.99), number(1e-3)),
                Activation => "activation".into(),
                MaxPool => "maxpool 2x2 stride 2".into(),
                Dropout(r) => format!("dropout {}", number(r)),
                Flatten => "flatten".into(),
                Dense { name, out, bias } => format!("dense {name} out={out} {}", if bias { "bias" } else { "no bias" }),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("softmax cross-entropy\n");
        crate::io::sha256_hex(text.as_bytes())
    }
}

/// The shape (h, w, c) entering layer `i` of `layers` (a dense layer's is (1, 1, n)).
pub(super) const fn shape_before(layers: &[Layer], i: usize) -> [usize; 3] {
    let mut s = INPUT;
    let mut j = 0;
    while j < i {
        s = match layers[j] {
            Conv { cout, k, pad, .. } => [s[0] + 2 * pad - k + 1, s[1] + 2 * pad - k + 1, cout],
            MaxPool => [s[0] / 2, s[1] / 2, s[2]],
            Flatten => [1, 1, s[0] * s[1] * s[2]],
            Dense { out, .. } => [1, 1, out],
            Activation | Dropout(_) | BatchNorm { .. } => s,
        };
        j += 1;
    }
    s
}

/// Kinds of layer, for counting and finding them in const code.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Conv,
    Pool,
    Dense,
    Dropout,
    Activation,
    Norm,
}

const fn is(l: &Layer, k: Kind) -> bool {
    match k {
        Kind::Conv => matches!(l, Conv { .. }),
        Kind::Pool => matches!(l, MaxPool),
        Kind::Dense => matches!(l, Dense { .. }),
        Kind::Dropout => matches!(l, Dropout(_)),
        Kind::Activation => matches!(l, Activation),
        Kind::Norm => matches!(l, BatchNorm { .. }),
    }
}

/// The index in `layers` of the `n`-th layer (0-based) of kind `k`.
const fn nth(layers: &[Layer], n: usize, k: Kind) -> usize {
    let (mut i, mut seen) = (0, 0);
    while i < layers.len() {
        if is(&layers[i], k) {
            if seen == n {
                return i;
            }
            seen += 1;
        }
        i += 1;
    }
    panic!("the network has no such layer")
}

/// How many of the first `end` layers are of kind `k`.
pub(super) const fn count_before(layers: &[Layer], end: usize, k: Kind) -> usize {
    let (mut i, mut c) = (0, 0);
    while i < end {
        c += is(&layers[i], k) as usize;
        i += 1;
    }
    c
}

/// How many layers of kind `k`.
const fn count(k: Kind) -> usize {
    count_before(&LAYERS, LAYERS.len(), k)
}

/// The shape of the convolution at `layers[i]`.
pub(super) const fn conv_at(layers: &[Layer], i: usize) -> ConvShape {
    let s = shape_before(layers, i);
    match layers[i] {
        Conv { cout, k, pad, .. } => ConvShape { h: s[0], w: s[1], cin: s[2], cout, k, pad },
        _ => panic!("not a convolution"),
    }
}

/// The shape of the `n`-th convolution.
pub const fn conv(n: usize) -> ConvShape {
    conv_at(&LAYERS, nth(&LAYERS, n, Kind::Conv))
}

/// The (h, w, c) entering the `n`-th max pooling.
pub const fn pool(n: usize) -> [usize; 3] {
    shape_before(&LAYERS, nth(&LAYERS, n, Kind::Pool))
}

/// (inputs, outputs) of the `n`-th dense layer.
pub const fn dense(n: usize) -> [usize; 2] {
    let i = nth(&LAYERS, n, Kind::Dense);
    [shape_before(&LAYERS, i)[2], shape_before(&LAYERS, i + 1)[2]]
}

pub const CONVS: usize = count(Kind::Conv);
/// Values per input image (h·w·c).
pub const IMAGE_LEN: usize = INPUT[0] * INPUT[1] * INPUT[2];
/// The last layer's outputs: one logit per class.
pub const CLASSES: usize = dense(count(Kind::Dense) - 1)[1];
pub const POOLS: usize = count(Kind::Pool);

/// The rates of the dropout layers, in order.
pub const DROPOUT_RATES: [f32; count(Kind::Dropout)] = {
    let mut out = [0.0; count(Kind::Dropout)];
    let mut n = 0;
    while n < out.len() {
        out[n] = match LAYERS[nth(&LAYERS, n, Kind::Dropout)] {
            Dropout(r) => r,
            _ => unreachable!(),
        };
        n += 1;
    }
    out
};

/// A layer whose output goes through the activation function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Activated {
    /// The layer's name (`conv1`, …, `dense1`), as in diagnostics.csv.
    pub name: &'static str,
    /// A group's length: a conv's positions (h·w), a dense layer's units.
    pub spatial: usize,
    /// Groups per sample: a conv's channels; 1 for a dense layer.
    pub channels: usize,
    /// Units whose weights the diagnostics call dead or alive: a conv's channels, a dense layer's neurons.
    pub units: usize,
    /// The index in [`PARAMS`] of the layer's weights.
    pub weights: usize,
}

#[allow(clippy::len_without_is_empty)] // an activated layer is never empty
impl Activated {
    /// Values per sample.
    pub const fn len(&self) -> usize {
        self.spatial * self.channels
    }
}

/// The activation at `layers[i]`, described by the layer it activates.
pub(super) const fn activated_at(layers: &[Layer], i: usize) -> Activated {
    let s = shape_before(layers, i);
    // The layer with weights before it (a batch normalisation may stand between).
    let i = if matches!(layers[i - 1], BatchNorm { .. }) { i - 1 } else { i };
    match layers[i - 1] {
        Conv { name, cout, .. } => Activated { name, spatial: s[0] * s[1], channels: cout, units: cout, weights: weights_of(layers, i - 1) },
        Dense { name, out, .. } => Activated { name, spatial: out, channels: 1, units: out, weights: weights_of(layers, i - 1) },
        _ => panic!("an activation follows a convolution or a dense layer"),
    }
}

/// The activated layers, in order. A layer-wise function (zero_fit) takes
/// its minimum per (sample, channel) over the positions of a conv, and per
/// sample over a dense layer's units: the groups are (spatial × channels).
pub const ACTIVATED: [Activated; count(Kind::Activation)] = {
    let mut out = [Activated { name: "", spatial: 0, channels: 0, units: 0, weights: 0 }; count(Kind::Activation)];
    let mut n = 0;
    while n < out.len() {
        out[n] = activated_at(&LAYERS, nth(&LAYERS, n, Kind::Activation));
        n += 1;
    }
    out
};

/// What a parameter tensor is to its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Weight,
    Bias,
    /// A batch normalisation's scale γ and shift β.
    Gamma,
    Beta,
    /// A batch normalisation's moving statistics: not trained (their
    /// gradient is 0, which leaves them unchanged under Adam and SGD), but
    /// updated by every training pass and kept in checkpoints like the rest.
    MovingMean,
    MovingVariance,
}

/// How a parameter tensor starts (Keras' defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Glorot-uniform with these fans.
    Glorot { fan_in: usize, fan_out: usize },
    Zeros,
    Ones,
}

/// One parameter tensor of the flat vector (Keras' order: conv1 kernel,
/// conv1 bias, …, dense2 bias; a batch normalisation's γ, β, moving mean,
/// moving variance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub layer: &'static str,
    pub role: Role,
    pub len: usize,
    pub init: Init,
}

impl ParamSpec {
    /// `<layer>.<weight|bias|gamma|beta|moving_mean|moving_variance>`, as in the fixtures.
    pub fn name(&self) -> String {
        let role = match self.role {
            Role::Weight => "weight",
            Role::Bias => "bias",
            Role::Gamma => "gamma",
            Role::Beta => "beta",
            Role::MovingMean => "moving_mean",
            Role::MovingVariance => "moving_variance",
        };
        format!("{}.{role}", self.layer)
    }
}

const NO_PARAM: ParamSpec = ParamSpec { layer: "", role: Role::Bias, len: 0, init: Init::Zeros };

const fn spec(layer: &'static str, role: Role, len: usize, init: Init) -> ParamSpec {
    ParamSpec { layer, role, len, init }
}

/// The parameter tensors of the layer at `layers[i]`: the first `count` of the array.
pub(super) const fn params_at(layers: &[Layer], i: usize) -> ([ParamSpec; 4], usize) {
    let s = shape_before(layers, i);
    let mut out = [NO_PARAM; 4];
    let count = match layers[i] {
        Conv { name, cout, k, bias, .. } => {
            out[0] = spec(name, Role::Weight, k * k * s[2] * cout, Init::Glorot { fan_in: k * k * s[2], fan_out: k * k * cout });
            out[1] = spec(name, Role::Bias, cout, Init::Zeros);
            1 + bias as usize
        }
        Dense { name, out: outs, bias } => {
            out[0] = spec(name, Role::Weight, s[2] * outs, Init::Glorot { fan_in: s[2], fan_out: outs });
            out[1] = spec(name, Role::Bias, outs, Init::Zeros);
            1 + bias as usize
        }
        BatchNorm { name } => {
            let c = s[2];
            out = [spec(name, Role::Gamma, c, Init::Ones), spec(name, Role::Beta, c, Init::Zeros), spec(name, Role::MovingMean, c, Init::Zeros), spec(name, Role::MovingVariance, c, Init::Ones)];
            4
        }
        Activation | MaxPool | Dropout(_) | Flatten => 0,
    };
    (out, count)
}

/// The index in the parameter tensors of the first tensor of `layers[i]`.
pub(super) const fn weights_of(layers: &[Layer], i: usize) -> usize {
    let (mut j, mut before) = (0, 0);
    while j < i {
        before += params_at(layers, j).1;
        j += 1;
    }
    before
}

/// Every parameter tensor of the article's network.
pub const PARAMS: [ParamSpec; weights_of(&LAYERS, LAYERS.len())] = {
    let mut out = [NO_PARAM; weights_of(&LAYERS, LAYERS.len())];
    let (mut i, mut at) = (0, 0);
    while i < LAYERS.len() {
        let (specs, count) = params_at(&LAYERS, i);
        let mut k = 0;
        while k < count {
            out[at] = specs[k];
            at += 1;
            k += 1;
        }
        i += 1;
    }
    out
};

/// The index in [`PARAMS`] of the `n`-th convolution's weights.
pub const fn conv_weights(n: usize) -> usize {
    weights_of(&LAYERS, nth(&LAYERS, n, Kind::Conv))
}

/// The index in [`PARAMS`] of the `n`-th dense layer's weights.
pub const fn dense_weights(n: usize) -> usize {
    weights_of(&LAYERS, nth(&LAYERS, n, Kind::Dense))
}

pub const fn param_count() -> usize {
    let mut s = 0;
    let mut i = 0;
    while i < PARAMS.len() {
        s += PARAMS[i].len;
        i += 1;
    }
    s
}

/// Offsets of each tensor in the flat vector.
pub fn param_ranges() -> [std::ops::Range<usize>; PARAMS.len()] {
    let mut o = 0;
    PARAMS.map(|p| {
        let r = o..o + p.len;
        o += p.len;
        r
    })
}

impl Architecture {
    /// The network in Keras' words, one block per line (`act` is the
    /// function under study), e.g. `Conv2D(32, 3×3, same) → act → …`.
    pub fn describe(self) -> String {
        let layers = self.layers();
        let mut lines = vec![String::new()];
        for (i, l) in layers.iter().enumerate() {
            let no_bias = |bias: bool| if bias { "" } else { ", no bias" };
            let text = match *l {
                Conv { cout, k, pad, bias, .. } => {
                    let padding = if pad == 0 { "valid".to_string() } else if 2 * pad + 1 == k { "same".into() } else { format!("pad {pad}") };
                    format!("Conv2D({cout}, {k}×{k}, {padding}{})", no_bias(bias))
                }
                BatchNorm { .. } => "BatchNorm".into(),
                Activation => "act".into(),
                MaxPool => "MaxPool 2×2".into(),
                Dropout(r) => format!("Dropout {r}"),
                Flatten => "Flatten".into(),
                Dense { out, bias, .. } => format!("Dense({out}{})", no_bias(bias)),
            };
            let line = lines.last_mut().unwrap();
            if !line.is_empty() || i > 0 {
                line.push_str(if line.is_empty() { "→ " } else { " → " });
            }
            line.push_str(&text);
            // A line per block: a block ends with its dropout.
            if matches!(l, Dropout(_)) && matches!(layers.get(i + 1), Some(Conv { .. } | Flatten)) {
                lines.push(String::new());
            }
        }
        lines.last_mut().unwrap().push_str(" → softmax");
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_gives_the_article_network() {
        assert_eq!(conv(1), ConvShape { h: 32, w: 32, cin: 32, cout: 32, k: 3, pad: 0 });
        assert_eq!(conv(3), ConvShape { h: 15, w: 15, cin: 64, cout: 64, k: 3, pad: 0 });
        assert_eq!((pool(0), pool(1)), ([30, 30, 32], [13, 13, 64]));
        assert_eq!((dense(0), dense(1)), ([2304, 512], [512, 10]));
        assert_eq!(DROPOUT_RATES, [0.25, 0.25, 0.5]);
        assert_eq!(ACTIVATED.map(|a| (a.name, a.spatial, a.channels)), [("conv1", 1024, 32), ("conv2", 900, 32), ("conv3", 225, 64), ("conv4", 169, 64), ("dense1", 512, 1)]);
        assert_eq!(PARAMS.map(|p| p.len), [864, 32, 9216, 32, 18432, 64, 36864, 64, 1_179_648, 512, 5120, 10]);
        assert_eq!(param_count(), 1_250_858, "Keras' model.summary() of the article's network");
        assert_eq!((PARAMS[8].name(), dense_weights(0), conv_weights(3), PARAMS[2].init), ("dense1.weight".to_string(), 8, 6, Init::Glorot { fan_in: 288, fan_out: 288 }));
        assert_eq!(
            Architecture::Article.describe(),
            "Conv2D(32, 3×3, same) → act → Conv2D(32, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Conv2D(64, 3×3, same) → act → Conv2D(64, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Flatten → Dense(512) → act → Dropout 0.5 → Dense(10) → softmax"
        );
    }

    /// The article's 1,250,858 parameters, less the 704 biases of the layers
    /// before a normalisation, plus γ and β of its 32 + 32 + 64 + 64 + 512
    /// channels (trainable), and their moving mean and variance (not).
    #[test]
    fn the_batch_norm_table() {
        let plan = Architecture::ArticleBn.plan();
        let trainable: usize = plan.params.iter().filter(|p| !matches!(p.role, Role::MovingMean | Role::MovingVariance)).map(|p| p.len).sum();
        let total: usize = plan.params.iter().map(|p| p.len).sum();
        assert_eq!((trainable, total - trainable), (1_251_562, 1_408));
        assert_eq!(plan.params.iter().filter(|p| p.role == Role::Bias).count(), 1, "only dense2 keeps its bias");
        assert_eq!(plan.activated.iter().map(|a| (a.name, a.weights)).collect::<Vec<_>>(), [("conv1", 0), ("conv2", 5), ("conv3", 10), ("conv4", 15), ("dense1", 20)]);
        assert_ne!(Architecture::ArticleBn.sha256(), Architecture::Article.sha256());
        assert!(Architecture::ArticleBn.describe().starts_with("Conv2D(32, 3×3, same, no bias) → BatchNorm → act"));
    }
}
