//! Study files (`studies/*.toml`): which functions, which seeds, which
//! protocol, and what was predicted. Every mistake is reported with the
//! file, the line and the field.

use crate::activation::Activation;
use crate::nn::arch::Architecture;
use crate::nn::optim::{AdamConfig, OptimizerConfig, SgdConfig};
use crate::store::Runs;
use crate::train::config::Protocol;
use crate::train::TrainConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudy {
    name: Spanned<String>,
    title: String,
    #[serde(default)]
    description: String,
    dataset: Spanned<String>,
    /// The network, by name (default: the article's).
    #[serde(default)]
    architecture: Option<Spanned<String>>,
    seeds: Spanned<Vec<u64>>,
    /// The function every other is compared with.
    baseline: Spanned<String>,
    /// Differences within ± this count as "similar" (needed with any such claim).
    #[serde(default)]
    similar_margin: Option<Spanned<f64>>,
    #[serde(default)]
    protocol: RawProtocol,
    functions: Spanned<Vec<RawFunction>>,
    #[serde(default)]
    design: Option<RawDesign>,
    #[serde(default)]
    hypothesis: Option<RawHypothesis>,
    /// The study's words in Japanese (`[ja]`); English is the default.
    #[serde(default)]
    ja: Option<Translation>,
    /// What the article observed, to be checked against the runs.
    #[serde(default)]
    observations: Vec<RawObservation>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservation {
    function: Spanned<String>,
    kind: Spanned<String>,
    /// levels_off: where, and how far from it still counts.
    near: Option<f64>,
    within: Option<f64>,
    /// below: the other function.
    than: Option<String>,
    /// The article's words, in English and in the original.
    article: String,
    ja: Option<String>,
}

/// Something the article saw in its runs, in a form the report can check.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub function: Activation,
    pub kind: ObservationKind,
    pub article: String,
    article_ja: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ObservationKind {
    /// Does not learn at first (first epoch at chance), then learns.
    StallsThenLearns,
    Overfits,
    NoOverfitting,
    /// val_accuracy levels off within `within` of `near`.
    LevelsOff { near: f64, within: f64 },
    /// Its plateau is below another function's.
    Below { than: Activation },
}

impl Observation {
    pub fn article_in(&self, lang: &str) -> &str {
        match (lang, &self.article_ja) {
            ("ja", Some(t)) => t,
            _ => &self.article,
        }
    }
}

/// A study's text in another language: any field left out stays English.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Translation {
    pub title: Option<String>,
    pub description: Option<String>,
    /// The design's hypothesis and factor names.
    pub hypothesis: Option<String>,
    pub rows: Option<String>,
    pub columns: Option<String>,
    /// Function name → its prediction.
    #[serde(default)]
    pub predictions: std::collections::BTreeMap<String, String>,
}

/// `[design]`: a 2x2 factorial layout of four of the study's functions.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDesign {
    hypothesis: String,
    rows: String,
    columns: String,
    cells: Spanned<Vec<Vec<Spanned<String>>>>,
    credits: Spanned<String>,
}

/// `[hypothesis]`: what a study without a 2x2 design tests as a whole.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHypothesis {
    text: String,
    /// The functions whose claims decide it…
    #[serde(default)]
    decided_by: Option<Spanned<Vec<Spanned<String>>>>,
    /// …or claims of its own (`{ function, metric, than, expect }`), judged
    /// apart from the functions' predictions.
    #[serde(default)]
    claims: Option<Spanned<Vec<RawHypothesisClaim>>>,
    /// Another study asking the same question with another design.
    #[serde(default)]
    same_question_as: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHypothesisClaim {
    function: Spanned<String>,
    metric: Metric,
    than: Spanned<String>,
    expect: Direction,
}

/// A study's hypothesis, decided by the claims of some of its functions, or
/// by claims of its own (the rule is `report::hypothesis::verdict`).
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    pub text: String,
    /// The functions whose prediction claims decide it (empty when it has its own claims).
    pub decided_by: Vec<Activation>,
    /// Its own claims: (function, claim).
    pub claims: Vec<(Activation, Claim)>,
    /// The name of another study that tests the same hypothesis with another design.
    pub same_question_as: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    epochs: Option<Spanned<usize>>,
    batch_size: Option<Spanned<usize>>,
    /// `adam` (the article's, by default) or `sgd` (with momentum).
    optimizer: Option<Spanned<String>>,
    learning_rate: Option<Spanned<f32>>,
    /// SGD only.
    momentum: Option<Spanned<f32>>,
    /// Adam only, as are beta2 and epsilon.
    beta1: Option<Spanned<f32>>,
    beta2: Option<Spanned<f32>>,
    epsilon: Option<Spanned<f32>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    name: Spanned<String>,
    /// Define the function by expression (see `activation::expr`).
    #[serde(default)]
    expr: Option<String>,
    /// With `expr`: an expression that replaces its derivative.
    #[serde(default)]
    grad: Option<String>,
    #[serde(default)]
    prediction: Option<String>,
    #[serde(default)]
    claims: Vec<Claim>,
}

/// A checkable part of a prediction: `metric` of this function compared
/// with the same metric of `than`.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub metric: Metric,
    pub than: Activation,
    pub expect: Direction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean val_accuracy over the last epochs (`report::data::PLATEAU_EPOCHS`):
    /// where the curve levels off.
    PlateauValAccuracy,
    /// Highest val_accuracy over the epochs (biased upward: the best of many
    /// noisy evaluations of the same test set).
    BestValAccuracy,
    /// val_accuracy of the last epoch.
    FinalValAccuracy,
    /// accuracy − val_accuracy over the last epochs (the overfitting measure).
    OverfitGap,
    /// val_accuracy after the first epoch (where a stall shows).
    FirstValAccuracy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Higher,
    Lower,
    Similar,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub activation: Activation,
    pub prediction: Option<String>,
    pub claims: Vec<Claim>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Study {
    pub name: String,
    pub title: String,
    pub description: String,
    pub file: PathBuf,
    pub seeds: Vec<u64>,
    pub functions: Vec<Function>,
    /// The function the others are compared with.
    pub baseline: Activation,
    /// The equivalence margin of "similar" claims (NaN when there are none).
    pub similar_margin: f64,
    /// The protocol each run uses (activation and seed are set per run).
    pub protocol: Protocol,
    pub design: Option<Design>,
    /// `[hypothesis]` (a study with a `[design]` has its hypothesis there).
    pub hypothesis: Option<Hypothesis>,
    /// Language code → the study's text in it.
    translations: std::collections::BTreeMap<String, Translation>,
    pub observations: Vec<Observation>,
}

/// Two properties (factors), each present or absent, and the function that
/// has each combination: the study asks which property matters.
#[derive(Clone, Debug, PartialEq)]
pub struct Design {
    /// The claim under test, in words.
    pub hypothesis: String,
    /// The row factor and the column factor.
    pub factors: [String; 2],
    /// `cells[r][c]`: index 0 = the factor is present, 1 = absent.
    pub cells: [[Activation; 2]; 2],
    /// Which factor the hypothesis credits: 0 = rows, 1 = columns.
    pub credited: usize,
}

impl Design {
    /// The function with the given presence of (row factor, column factor).
    pub fn cell(&self, row_present: bool, column_present: bool) -> Activation {
        self.cells[usize::from(!row_present)][usize::from(!column_present)]
    }

    /// The function with both factors present, and the one with `factor` removed.
    pub fn removing(&self, factor: usize) -> (Activation, Activation) {
        let without = if factor == 0 { self.cell(false, true) } else { self.cell(true, false) };
        (self.cell(true, true), without)
    }
}

/// One (function, seed) cell of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub activation: Activation,
    pub seed: u64,
}

impl Study {
    fn translation(&self, lang: &str) -> Option<&Translation> {
        self.translations.get(lang)
    }

    pub fn title_in(&self, lang: &str) -> &str {
        self.translation(lang).and_then(|t| t.title.as_deref()).unwrap_or(&self.title)
    }

    pub fn description_in(&self, lang: &str) -> &str {
        self.translation(lang).and_then(|t| t.description.as_deref()).unwrap_or(&self.description)
    }

    pub fn prediction_in(&self, act: Activation, lang: &str) -> Option<&str> {
        self.translation(lang).and_then(|t| t.predictions.get(act.name())).map(String::as_str).or_else(|| self.function(act)?.prediction.as_deref())
    }

    /// The study's hypothesis as a whole (its design's, or `[hypothesis]`), in words.
    pub fn hypothesis_in(&self, lang: &str) -> Option<&str> {
        let own = self.design.as_ref().map(|d| d.hypothesis.as_str()).or(self.hypothesis.as_ref().map(|h| h.text.as_str()))?;
        Some(self.translation(lang).and_then(|t| t.hypothesis.as_deref()).unwrap_or(own))
    }

    /// The design's hypothesis and its two factors' names.
    pub fn design_words_in(&self, lang: &str) -> Option<(&str, [&str; 2])> {
        let d = self.design.as_ref()?;
        let t = self.translation(lang);
        Some((
            self.hypothesis_in(lang)?,
            [t.and_then(|t| t.rows.as_deref()).unwrap_or(&d.factors[0]), t.and_then(|t| t.columns.as_deref()).unwrap_or(&d.factors[1])],
        ))
    }

    /// Read a study by path, or by name from `studies/<name>.toml`.
    pub fn load(name_or_path: &str) -> Result<Study> {
        let p = Path::new(name_or_path);
        let path = if p.exists() || name_or_path.ends_with(".toml") { p.to_path_buf() } else { PathBuf::from("studies").join(format!("{name_or_path}.toml")) };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read study file {} (give a path, or the name of a file in studies/)", path.display())
        })?;
        Study::parse(&text, &path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Study> {
        let raw: RawStudy = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let at = |span: std::ops::Range<usize>, field: &str, msg: String| -> anyhow::Error {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            anyhow::anyhow!("{}: line {line}: `{field}`: {msg}", path.display())
        };
        let name = raw.name.get_ref().clone();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(at(raw.name.span(), "name", "use letters, digits, '-' and '_' (it names the artifacts folder)".into()));
        }
        if raw.dataset.get_ref() != "cifar10" {
            return Err(at(raw.dataset.span(), "dataset", format!("unknown dataset `{}`; the only one is \"cifar10\"", raw.dataset.get_ref())));
        }
        let seeds = raw.seeds.get_ref().clone();
        if seeds.is_empty() {
            return Err(at(raw.seeds.span(), "seeds", "list at least one seed".into()));
        }
        let mut sorted = seeds.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != seeds.len() {
            return Err(at(raw.seeds.span(), "seeds", "a seed is listed twice".into()));
        }
        let mut functions = Vec::new();
        for f in raw.functions.get_ref() {
            let act = match &f.expr {
                Some(e) => crate::activation::define(f.name.get_ref(), &crate::activation::Definition { expr: e.clone(), grad: f.grad.clone() })
                    .map_err(|msg| at(f.name.span(), "functions.expr", msg))?,
                None if f.grad.is_some() => return Err(at(f.name.span(), "functions.grad", "`grad` needs an `expr` beside it".into())),
                None => Activation::from_name(f.name.get_ref()).ok_or_else(|| {
                    at(f.name.span(), "functions.name", format!("unknown activation `{}`; choose one of: {}, or define it with `expr = \"…\"`", f.name.get_ref(), Activation::names().join(", ")))
                })?,
            };
            if functions.iter().any(|g: &Function| g.activation == act) {
                return Err(at(f.name.span(), "functions.name", format!("`{act}` is listed twice")));
            }
            functions.push(Function { activation: act, prediction: f.prediction.clone(), claims: f.claims.clone() });
        }
        if functions.is_empty() {
            return Err(at(raw.functions.span(), "functions", "list at least one function".into()));
        }
        for f in &functions {
            for c in &f.claims {
                if !functions.iter().any(|g| g.activation == c.than) {
                    bail!("{}: a claim of `{}` compares with `{}`, which the study does not run", path.display(), f.activation, c.than);
                }
            }
        }
        let baseline = functions.iter().find(|f| f.activation.name() == raw.baseline.get_ref()).map(|f| f.activation).ok_or_else(|| {
            at(raw.baseline.span(), "baseline", format!("`{}` is not one of the study's functions ({})", raw.baseline.get_ref(), functions.iter().map(|f| f.activation.name()).collect::<Vec<_>>().join(", ")))
        })?;
        let has_similar = functions.iter().flat_map(|f| &f.claims).any(|c| c.expect == Direction::Similar);
        let similar_margin = match &raw.similar_margin {
            Some(m) if !(*m.get_ref() > 0.0 && *m.get_ref() < 1.0) => return Err(at(m.span(), "similar_margin", "give a difference between 0 and 1, e.g. 0.02 (two accuracy points)".into())),
            Some(m) => *m.get_ref(),
            None if has_similar => return Err(at(raw.name.span(), "similar_margin", "a claim expects \"similar\": say within what difference, e.g. `similar_margin = 0.02`".into())),
            None => f64::NAN,
        };
        let find = |name: &str| functions.iter().find(|f| f.activation.name() == name).map(|f| f.activation);
        let names = functions.iter().map(|f| f.activation.name()).collect::<Vec<_>>().join(", ");
        let mut observations = Vec::new();
        for o in &raw.observations {
            let function = find(o.function.get_ref()).ok_or_else(|| at(o.function.span(), "observations.function", format!("`{}` is not one of the study's functions ({names})", o.function.get_ref())))?;
            let kind = match (o.kind.get_ref().as_str(), o.near, o.within, &o.than) {
                ("stalls_then_learns", None, None, None) => ObservationKind::StallsThenLearns,
                ("overfits", None, None, None) => ObservationKind::Overfits,
                ("no_overfitting", None, None, None) => ObservationKind::NoOverfitting,
                ("levels_off", Some(near), Some(within), None) if within > 0.0 => ObservationKind::LevelsOff { near, within },
                ("below", None, None, Some(than)) => ObservationKind::Below {
                    than: find(than).ok_or_else(|| at(o.kind.span(), "observations.than", format!("`{than}` is not one of the study's functions ({names})")))?,
                },
                (k, ..) => {
                    return Err(at(
                        o.kind.span(),
                        "observations.kind",
                        format!("`{k}` with these fields: give stalls_then_learns, overfits or no_overfitting alone, levels_off with `near` and `within` (> 0), or below with `than`"),
                    ));
                }
            };
            observations.push(Observation { function, kind, article: o.article.trim().to_string(), article_ja: o.ja.as_ref().map(|t| t.trim().to_string()) });
        }
        let design = match &raw.design {
            Some(d) => Some(parse_design(d, &functions, &at)?),
            None => None,
        };
        let hypothesis = match &raw.hypothesis {
            None => None,
            Some(_) if raw.design.is_some() => return Err(at(raw.name.span(), "hypothesis", "a study with a `[design]` states its hypothesis there; drop `[hypothesis]`".into())),
            Some(h) => {
                let function = |n: &Spanned<String>, field: &str| functions.iter().find(|f| f.activation.name() == n.get_ref()).ok_or_else(|| at(n.span(), field, format!("`{}` is not one of the study's functions ({names})", n.get_ref())));
                let (mut decided_by, mut claims) = (Vec::new(), Vec::new());
                match (&h.decided_by, &h.claims) {
                    (Some(_), Some(c)) => return Err(at(c.span(), "hypothesis.claims", "a hypothesis is decided by `decided_by` or by its own `claims`, not both".into())),
                    (None, None) => return Err(at(raw.name.span(), "hypothesis", "say what decides it: `decided_by` (functions whose claims decide it) or `claims`".into())),
                    (Some(d), None) => {
                        for n in d.get_ref() {
                            let f = function(n, "hypothesis.decided_by")?;
                            if f.claims.is_empty() {
                                return Err(at(n.span(), "hypothesis.decided_by", format!("`{}` has no claims to decide the hypothesis with", n.get_ref())));
                            }
                            decided_by.push(f.activation);
                        }
                        if decided_by.is_empty() {
                            return Err(at(d.span(), "hypothesis.decided_by", "name at least one function whose claims decide the hypothesis".into()));
                        }
                    }
                    (None, Some(c)) => {
                        for rc in c.get_ref() {
                            let f = function(&rc.function, "hypothesis.claims.function")?.activation;
                            let than = function(&rc.than, "hypothesis.claims.than")?.activation;
                            claims.push((f, Claim { metric: rc.metric, than, expect: rc.expect }));
                        }
                        if claims.is_empty() {
                            return Err(at(c.span(), "hypothesis.claims", "list at least one claim".into()));
                        }
                    }
                }
                Some(Hypothesis { text: h.text.trim().to_string(), decided_by, claims, same_question_as: h.same_question_as.clone() })
            }
        };
        let p = &raw.protocol;
        let def = Protocol::ARTICLE;
        let network = match &raw.architecture {
            None => Architecture::Article,
            Some(a) => Architecture::from_name(a.get_ref()).ok_or_else(|| {
                let known = Architecture::ALL.iter().map(|a| format!("\"{}\"", a.name())).collect::<Vec<_>>().join(", ");
                at(a.span(), "architecture", format!("unknown network `{}`; the networks are {known}", a.get_ref()))
            })?,
        };
        // The optimizer and its settings; a setting of the other optimizer is an error at its field.
        let optimizer = |p: &RawProtocol| -> Result<OptimizerConfig, anyhow::Error> {
            let value = |v: &Option<Spanned<f32>>, default: f32| v.as_ref().map_or(default, |v| *v.get_ref());
            let foreign = |name: &str, fields: &[(&str, &Option<Spanned<f32>>)]| -> Result<(), anyhow::Error> {
                match fields.iter().find_map(|(f, v)| v.as_ref().map(|v| (f, v.span()))) {
                    Some((f, span)) => Err(at(span, &format!("protocol.{f}"), format!("`{f}` is not a setting of {name}; remove it or set `optimizer` to the optimizer it belongs to"))),
                    None => Ok(()),
                }
            };
            let kind = p.optimizer.as_ref().map_or("adam", |o| o.get_ref().as_str());
            match kind {
                "adam" => {
                    foreign("Adam", &[("momentum", &p.momentum)])?;
                    let k = AdamConfig::KERAS;
                    Ok(OptimizerConfig::Adam(AdamConfig { learning_rate: value(&p.learning_rate, k.learning_rate), beta1: value(&p.beta1, k.beta1), beta2: value(&p.beta2, k.beta2), epsilon: value(&p.epsilon, k.epsilon) }))
                }
                "sgd" => {
                    foreign("SGD", &[("beta1", &p.beta1), ("beta2", &p.beta2), ("epsilon", &p.epsilon)])?;
                    let k = SgdConfig::KERAS;
                    Ok(OptimizerConfig::Sgd(SgdConfig { learning_rate: value(&p.learning_rate, k.learning_rate), momentum: value(&p.momentum, k.momentum) }))
                }
                other => Err(at(p.optimizer.as_ref().map(|o| o.span()).unwrap_or(0..0), "protocol.optimizer", format!("`{other}` is not an optimizer; write \"adam\" (the article's) or \"sgd\""))),
            }
        };
        let study = Study {
            name,
            title: raw.title.trim().to_string(),
            description: raw.description,
            file: path.to_path_buf(),
            seeds,
            functions,
            baseline,
            similar_margin,
            protocol: Protocol {
                epochs: p.epochs.as_ref().map_or(def.epochs, |v| *v.get_ref()),
                batch_size: p.batch_size.as_ref().map_or(def.batch_size, |v| *v.get_ref()),
                optimizer: optimizer(p)?,
                train_limit: None,
                test_limit: None,
                network,
            },
            design,
            hypothesis,
            translations: raw.ja.iter().map(|t| ("ja".to_string(), t.clone())).collect(),
            observations,
        };
        if let Some(t) = &raw.ja {
            for name in t.predictions.keys() {
                if !study.functions.iter().any(|f| f.activation.name() == name) {
                    bail!("{}: `ja.predictions.{name}`: `{name}` is not one of the study's functions", path.display());
                }
            }
        }
        // Impossible values, reported at the field that holds them (the rules are Protocol::check's).
        if let Err((field, why)) = study.protocol.check() {
            let span = match field {
                "epochs" => p.epochs.as_ref().map(|v| v.span()),
                "batch_size" => p.batch_size.as_ref().map(|v| v.span()),
                "learning_rate" => p.learning_rate.as_ref().map(|v| v.span()),
                "momentum" => p.momentum.as_ref().map(|v| v.span()),
                "beta1" => p.beta1.as_ref().map(|v| v.span()),
                "beta2" => p.beta2.as_ref().map(|v| v.span()),
                "epsilon" => p.epsilon.as_ref().map(|v| v.span()),
                _ => None,
            };
            return Err(at(span.unwrap_or(0..0), &format!("protocol.{field}"), why));
        }
        Ok(study)
    }

    /// The runs, function-major in file order, then seeds in file order.
    pub fn grid(&self) -> Vec<RunSpec> {
        self.functions.iter().flat_map(|f| self.seeds.iter().map(move |&seed| RunSpec { activation: f.activation, seed })).collect()
    }

    /// The training configuration of one run at `protocol` (the study's own, or a reduction of it).
    pub fn config(&self, run: &RunSpec, protocol: &Protocol) -> TrainConfig {
        TrainConfig::new(run.activation, run.seed, *protocol)
    }

    /// Each (function, seed) of the grid with its folder in `runs` at `protocol`.
    pub fn runs_in(&self, runs: &Runs, protocol: &Protocol) -> Vec<(RunSpec, PathBuf)> {
        self.grid().into_iter().map(|r| {
            let dir = runs.dir(&self.config(&r, protocol));
            (r, dir)
        }).collect()
    }

    /// The runs in the order a queue computes them: round-robin by seed
    /// (every function's first seed, then every function's second, …), so
    /// each function has a result before any has all of them.
    pub fn by_seed(&self) -> Vec<RunSpec> {
        self.seeds.iter().flat_map(|&seed| self.functions.iter().map(move |f| RunSpec { activation: f.activation, seed })).collect()
    }

    pub fn function(&self, act: Activation) -> Option<&Function> {
        self.functions.iter().find(|f| f.activation == act)
    }
}

fn parse_design(d: &RawDesign, functions: &[Function], at: &impl Fn(std::ops::Range<usize>, &str, String) -> anyhow::Error) -> Result<Design> {
    let rows = d.cells.get_ref();
    if rows.len() != 2 || rows.iter().any(|r| r.len() != 2) {
        return Err(at(d.cells.span(), "design.cells", "give two rows of two function names: [[both, rows-only], [columns-only, neither]]".into()));
    }
    let mut cells = [[Activation::Relu; 2]; 2];
    for (r, row) in rows.iter().enumerate() {
        for (c, name) in row.iter().enumerate() {
            let f = functions.iter().find(|f| f.activation.name() == name.get_ref()).ok_or_else(|| {
                at(name.span(), "design.cells", format!("`{}` is not one of the study's functions ({})", name.get_ref(), functions.iter().map(|f| f.activation.name()).collect::<Vec<_>>().join(", ")))
            })?;
            cells[r][c] = f.activation;
        }
    }
    let flat = [cells[0][0], cells[0][1], cells[1][0], cells[1][1]];
    if (0..4).any(|i| (0..i).any(|j| flat[i] == flat[j])) {
        return Err(at(d.cells.span(), "design.cells", "each cell needs a different function".into()));
    }
    let credited = match d.credits.get_ref().as_str() {
        "rows" => 0,
        "columns" => 1,
        other => return Err(at(d.credits.span(), "design.credits", format!("`{other}`: say which factor the hypothesis credits, \"rows\" or \"columns\""))),
    };
    Ok(Design { hypothesis: d.hypothesis.trim().to_string(), factors: [d.rows.clone(), d.columns.clone()], cells, credited })
}
