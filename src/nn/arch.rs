//! The article's network as one table ([`LAYERS`]), from which the rest is
//! derived at compile time: the CPU model's layer types and their wiring,
//! the parameter tensors (names, sizes, Glorot fans — llm.c's
//! `fill_in_parameter_sizes`), the dropout rates, the activated layers the
//! diagnostics report on, the GPU runs' shapes and the book's description.
//! Adding a layer is one row here plus its steps in the forward and backward
//! passes (`model.rs`, and `gpu.rs` for the GPU).

use crate::engine::cpu::conv::Conv as ConvShape;

/// One layer of the network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Layer {
    /// A convolution with bias, stride 1: `cout` filters of `k × k`, `pad`
    /// zeros on each side ("same" when pad = (k − 1)/2, "valid" when 0).
    Conv { name: &'static str, cout: usize, k: usize, pad: usize },
    /// The activation function under study, on the previous layer's output.
    Activation,
    /// 2 × 2 max pooling, stride 2 (an odd last row or column is dropped).
    MaxPool,
    /// Dropout at this rate while training.
    Dropout(f32),
    /// NHWC → one vector per sample.
    Flatten,
    /// A fully connected layer with bias.
    Dense { name: &'static str, out: usize },
}

use Layer::*;

/// The input: height, width, channels (NHWC, values in [0, 1]).
const INPUT: [usize; 3] = [32, 32, 3];

/// The article's Keras `Sequential`, layer by layer (softmax is the loss's).
pub const LAYERS: [Layer; 17] = [
    Conv { name: "conv1", cout: 32, k: 3, pad: 1 },
    Activation,
    Conv { name: "conv2", cout: 32, k: 3, pad: 0 },
    Activation,
    MaxPool,
    Dropout(0.25),
    Conv { name: "conv3", cout: 64, k: 3, pad: 1 },
    Activation,
    Conv { name: "conv4", cout: 64, k: 3, pad: 0 },
    Activation,
    MaxPool,
    Dropout(0.25),
    Flatten,
    Dense { name: "dense1", out: 512 },
    Activation,
    Dropout(0.5),
    Dense { name: "dense2", out: 10 },
];

/// The networks a study can name (`architecture` in its file). Part of a
/// run's protocol, hence of its identity; the article's keeps the plain
/// protocol folders.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    #[default]
    Article,
}

impl Architecture {
    pub const ALL: [Architecture; 1] = [Architecture::Article];

    pub fn name(self) -> &'static str {
        match self {
            Architecture::Article => "article",
        }
    }

    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn layers(self) -> &'static [Layer] {
        match self {
            Architecture::Article => &LAYERS,
        }
    }

    /// sha256 of the layer table in a fixed spelling (one line per layer):
    /// `run.json` records it, so a network edited under an old name shows.
    pub fn sha256(self) -> String {
        let number = |r: f32| crate::activation::expr::canonical_number(r as f64);
        let mut text = format!("input {}x{}x{}\n", INPUT[0], INPUT[1], INPUT[2]);
        for l in self.layers() {
            let line = match *l {
                Conv { name, cout, k, pad } => format!("conv {name} out={cout} k={k} pad={pad} bias"),
                Activation => "activation".into(),
                MaxPool => "maxpool 2x2 stride 2".into(),
                Dropout(r) => format!("dropout {}", number(r)),
                Flatten => "flatten".into(),
                Dense { name, out } => format!("dense {name} out={out} bias"),
            };
            text.push_str(&line);
            text.push('\n');
        }
        text.push_str("softmax cross-entropy\n");
        crate::io::sha256_hex(text.as_bytes())
    }
}

/// The shape (h, w, c) entering layer `i` (a dense layer's is (1, 1, n)).
const fn shape_before(i: usize) -> [usize; 3] {
    let mut s = INPUT;
    let mut j = 0;
    while j < i {
        s = match LAYERS[j] {
            Conv { cout, k, pad, .. } => [s[0] + 2 * pad - k + 1, s[1] + 2 * pad - k + 1, cout],
            MaxPool => [s[0] / 2, s[1] / 2, s[2]],
            Flatten => [1, 1, s[0] * s[1] * s[2]],
            Dense { out, .. } => [1, 1, out],
            Activation | Dropout(_) => s,
        };
        j += 1;
    }
    s
}

/// Kinds of layer, for counting and finding them in const code.
#[derive(Clone, Copy)]
enum Kind {
    Conv,
    Pool,
    Dense,
    Dropout,
    Activation,
    /// A layer with weights and a bias.
    Params,
}

const fn is(l: &Layer, k: Kind) -> bool {
    match k {
        Kind::Conv => matches!(l, Conv { .. }),
        Kind::Pool => matches!(l, MaxPool),
        Kind::Dense => matches!(l, Dense { .. }),
        Kind::Dropout => matches!(l, Dropout(_)),
        Kind::Activation => matches!(l, Activation),
        Kind::Params => matches!(l, Conv { .. } | Dense { .. }),
    }
}

/// The index in [`LAYERS`] of the `n`-th layer (0-based) of kind `k`.
const fn nth(n: usize, k: Kind) -> usize {
    let (mut i, mut seen) = (0, 0);
    while i < LAYERS.len() {
        if is(&LAYERS[i], k) {
            if seen == n {
                return i;
            }
            seen += 1;
        }
        i += 1;
    }
    panic!("the network has no such layer")
}

/// How many layers of kind `k`.
const fn count(k: Kind) -> usize {
    let (mut i, mut c) = (0, 0);
    while i < LAYERS.len() {
        c += is(&LAYERS[i], k) as usize;
        i += 1;
    }
    c
}

/// The shape of the `n`-th convolution.
pub const fn conv(n: usize) -> ConvShape {
    let i = nth(n, Kind::Conv);
    let s = shape_before(i);
    match LAYERS[i] {
        Conv { cout, k, pad, .. } => ConvShape { h: s[0], w: s[1], cin: s[2], cout, k, pad },
        _ => unreachable!(),
    }
}

/// The (h, w, c) entering the `n`-th max pooling.
pub const fn pool(n: usize) -> [usize; 3] {
    shape_before(nth(n, Kind::Pool))
}

/// (inputs, outputs) of the `n`-th dense layer.
pub const fn dense(n: usize) -> [usize; 2] {
    let i = nth(n, Kind::Dense);
    [shape_before(i)[2], shape_before(i + 1)[2]]
}

pub const CONVS: usize = count(Kind::Conv);
pub const POOLS: usize = count(Kind::Pool);

/// The rates of the dropout layers, in order.
pub const DROPOUT_RATES: [f32; count(Kind::Dropout)] = {
    let mut out = [0.0; count(Kind::Dropout)];
    let mut n = 0;
    while n < out.len() {
        out[n] = match LAYERS[nth(n, Kind::Dropout)] {
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

/// The activated layers, in order. A layer-wise function (zero_fit) takes
/// its minimum per (sample, channel) over the positions of a conv, and per
/// sample over a dense layer's units: the groups are (spatial × channels).
pub const ACTIVATED: [Activated; count(Kind::Activation)] = {
    let mut out = [Activated { name: "", spatial: 0, channels: 0, units: 0, weights: 0 }; count(Kind::Activation)];
    let mut n = 0;
    while n < out.len() {
        let i = nth(n, Kind::Activation);
        let s = shape_before(i);
        out[n] = match LAYERS[i - 1] {
            Conv { name, cout, .. } => Activated { name, spatial: s[0] * s[1], channels: cout, units: cout, weights: weights_of(i - 1) },
            Dense { name, out, .. } => Activated { name, spatial: out, channels: 1, units: out, weights: weights_of(i - 1) },
            _ => panic!("an activation follows a convolution or a dense layer"),
        };
        n += 1;
    }
    out
};

/// Whether a parameter tensor is a layer's weights or its bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Weight,
    Bias,
}

/// One parameter tensor of the flat vector (Keras' order: conv1 kernel,
/// conv1 bias, …, dense2 bias).
#[derive(Clone, Copy, Debug)]
pub struct ParamSpec {
    pub layer: &'static str,
    pub role: Role,
    pub len: usize,
    /// Glorot fans for weights; 0 for biases (initialised to zero).
    pub fan_in: usize,
    pub fan_out: usize,
}

impl ParamSpec {
    /// `<layer>.<weight|bias>`, as in the fixtures.
    pub fn name(&self) -> String {
        format!("{}.{}", self.layer, if self.role == Role::Weight { "weight" } else { "bias" })
    }
}

/// Every parameter tensor: a weight and a bias per convolution and dense layer.
pub const PARAMS: [ParamSpec; 2 * count(Kind::Params)] = {
    let mut out = [ParamSpec { layer: "", role: Role::Bias, len: 0, fan_in: 0, fan_out: 0 }; 2 * count(Kind::Params)];
    let mut n = 0;
    while n < count(Kind::Params) {
        let i = nth(n, Kind::Params);
        let s = shape_before(i);
        let (layer, weights, fan_in, fan_out, bias) = match LAYERS[i] {
            Conv { name, cout, k, .. } => (name, k * k * s[2] * cout, k * k * s[2], k * k * cout, cout),
            Dense { name, out } => (name, s[2] * out, s[2], out, out),
            _ => unreachable!(),
        };
        out[2 * n] = ParamSpec { layer, role: Role::Weight, len: weights, fan_in, fan_out };
        out[2 * n + 1] = ParamSpec { layer, role: Role::Bias, len: bias, fan_in: 0, fan_out: 0 };
        n += 1;
    }
    out
};

/// The index in [`PARAMS`] of the weights of layer `LAYERS[i]` (its bias follows).
const fn weights_of(i: usize) -> usize {
    let (mut j, mut before) = (0, 0);
    while j < i {
        before += is(&LAYERS[j], Kind::Params) as usize;
        j += 1;
    }
    2 * before
}

/// The index in [`PARAMS`] of the `n`-th convolution's weights.
pub const fn conv_weights(n: usize) -> usize {
    weights_of(nth(n, Kind::Conv))
}

/// The index in [`PARAMS`] of the `n`-th dense layer's weights.
pub const fn dense_weights(n: usize) -> usize {
    weights_of(nth(n, Kind::Dense))
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

/// The network in Keras' words, one block per line (`act` is the function
/// under study), e.g. `Conv2D(32, 3×3, same) → act → …`.
pub fn describe() -> String {
    let mut lines = vec![String::new()];
    for (i, l) in LAYERS.iter().enumerate() {
        let text = match *l {
            Conv { cout, k, pad, .. } => format!("Conv2D({cout}, {k}×{k}, {})", if pad == 0 { "valid".to_string() } else if 2 * pad + 1 == k { "same".into() } else { format!("pad {pad}") }),
            Activation => "act".into(),
            MaxPool => "MaxPool 2×2".into(),
            Dropout(r) => format!("Dropout {r}"),
            Flatten => "Flatten".into(),
            Dense { out, .. } => format!("Dense({out})"),
        };
        let line = lines.last_mut().unwrap();
        if !line.is_empty() || i > 0 {
            line.push_str(if line.is_empty() { "→ " } else { " → " });
        }
        line.push_str(&text);
        // A line per block: a block ends with its dropout.
        if matches!(l, Dropout(_)) && matches!(LAYERS.get(i + 1), Some(Conv { .. } | Flatten)) {
            lines.push(String::new());
        }
    }
    lines.last_mut().unwrap().push_str(" → softmax");
    lines.join("\n")
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
        assert_eq!((PARAMS[8].name(), dense_weights(0), conv_weights(3), PARAMS[2].fan_in), ("dense1.weight".to_string(), 8, 6, 288));
        assert_eq!(
            describe(),
            "Conv2D(32, 3×3, same) → act → Conv2D(32, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Conv2D(64, 3×3, same) → act → Conv2D(64, 3×3, valid) → act → MaxPool 2×2 → Dropout 0.25\n\
             → Flatten → Dense(512) → act → Dropout 0.5 → Dense(10) → softmax"
        );
    }
}
