//! 結果 (results): the article's table (one row per function: its graph,
//! accuracy and loss curves, CSV downloads), the summary over seeds, all
//! functions on one chart, and the diagnostics as small multiples.

use super::StudyPages;
use crate::activation::Activation;
use crate::io::write_atomic;
use crate::nn::arch::ACTIVATED;
use crate::report::charts::{Band, LineChart, Reference, SeedRow, SeedsChart, Series, Stroke, REFERENCE_GREY, WIDE, WIDE_TEXT};
use crate::report::rules::CHANCE_ACCURACY;
use crate::report::colors::LAYER_COLORS;
use crate::report::data::{Run, HISTORY_COLUMNS};
use crate::report::design;
use crate::report::messages::fill;
use crate::report::stats::describe;
use crate::report::text;
use crate::train::record::median_epoch_seconds;
use anyhow::Result;
use std::fmt::Write as _;

/// The diagnostics drawn, in order: (column, its title, what it shows).
fn diagnostics(m: &crate::report::messages::Messages) -> [(&'static str, &str, &str); 6] {
    [
        ("pre_mean", &m.diag_pre_mean, &m.diag_pre_mean_what),
        ("post_mean", &m.diag_post_mean, &m.diag_post_mean_what),
        ("sparsity", &m.diag_sparsity, &m.diag_sparsity_what),
        ("zero_slope", &m.diag_zero_slope, &m.diag_zero_slope_what),
        ("dead_units", &m.diag_dead_units, &m.diag_dead_units_what),
        ("grad_in_mean_abs", &m.diag_grad, &m.diag_grad_what),
    ]
}

/// The anchor of the summary table, which the discussion's numbers link to.
pub const SUMMARY_ANCHOR: &str = "summary";
pub const DIAGNOSTICS_ANCHOR: &str = "diagnostics";
const FIRST_STEPS_ANCHOR: &str = "first-steps";

fn epochs(n: usize) -> Vec<f64> {
    (1..=n).map(|e| e as f64).collect()
}

/// A CSV column as a chart names it, in the book's language (`val_accuracy`
/// is "validation accuracy", 検証の正解率). A layer's prefix
/// (`dense1_pre_mean`) is left to the chart's title, which names the layer.
fn measure_words(m: &crate::report::messages::Messages, column: &str) -> String {
    let (validation, measure) = column.strip_prefix("val_").map_or((false, column), |rest| (true, rest));
    let measure = ACTIVATED.iter().find_map(|l| measure.strip_prefix(l.name).and_then(|r| r.strip_prefix('_'))).unwrap_or(measure);
    let name = match measure {
        "accuracy" => &m.row_accuracy,
        "loss" => &m.row_loss_curves,
        "grad_norm" => &m.measure_grad_norm,
        _ => diagnostics(m).iter().find(|d| d.0 == measure).map_or(column, |d| d.1),
    };
    if validation { fill(&m.measure_val, &[("measure", name)]) } else { name.to_string() }
}

impl StudyPages<'_> {
    /// A chart whose y axis is the CSV column `column`, named (and marked
    /// logarithmic, where it is) in the book's language.
    fn measure_chart(&self, title: &str, x_label: &str, column: &str) -> LineChart {
        let y = measure_words(self.m, column);
        let mut c = LineChart::new(title, x_label, &y);
        c.y_label_log = fill(&self.m.axis_log, &[("axis", &y)]);
        c
    }

    /// `a`'s runs set aside ([`crate::report::data::StudyData::cohorts`]),
    /// grouped by why: those that diverged, those that did not learn. Each
    /// group is drawn under one legend entry.
    fn set_aside_groups(&self, a: Activation) -> Vec<Vec<&Run>> {
        let (diverged, did_not_learn): (Vec<&Run>, Vec<&Run>) = self.data.cohorts(a).1.into_iter().partition(|r| r.diverged());
        [diverged, did_not_learn].into_iter().filter(|g| !g.is_empty()).collect()
    }

    /// The legend of runs of `a` set aside for one reason: "seed 5 (did not
    /// learn)", "seeds 1–3 (diverged)".
    fn set_aside_legend(&self, a: Activation, runs: &[&Run]) -> String {
        let m = self.m;
        let seeds: Vec<u64> = runs.iter().map(|r| r.seed).collect();
        let key = match (runs.iter().all(|r| r.diverged()), seeds.len() == 1) {
            (true, true) => &m.legend_diverged,
            (true, false) => &m.legend_diverged_seeds,
            (false, true) => &m.legend_set_aside,
            (false, false) => &m.legend_set_aside_seeds,
        };
        fill(key, &[("function", a.name()), ("seed", &text::seeds(m, &seeds))])
    }

    /// The run the article's table shows: the study's first seed, like the
    /// article's single run (or, while that one is missing, the first usable seed).
    fn table_run(&self, a: Activation) -> Option<&Run> {
        let first = self.data.study.seeds.first().copied();
        self.data.usable(a).find(|r| Some(r.seed) == first).or_else(|| self.data.usable(a).next())
    }

    /// One run's curves, as in the article's table; training solid, validation dashed.
    fn history_chart(&self, a: Activation, metric: &str, y_range: Option<(f64, f64)>) -> Result<String> {
        let m = self.m;
        let Some(run) = self.table_run(a) else { return Ok(String::new()) };
        let title = fill(&m.chart_one_seed, &[("function", a.name()), ("metric", &measure_words(m, metric)), ("seed", &run.seed.to_string())]);
        let mut c = self.measure_chart(&title, &m.axis_epoch, metric);
        c.y_range = y_range;
        if metric == "accuracy" {
            c.references = self.accuracy_references(a);
        }
        let color = (self.colors)(a);
        for (column, dashed, label) in [(metric.to_string(), false, &m.legend_train), (format!("val_{metric}"), true, &m.legend_val)] {
            let ys: Vec<f64> = run.history.iter().map(|e| e.get(&column)).collect();
            c.series.push(Series { name: label.clone(), xs: epochs(ys.len()), ys, color, stroke: Stroke::Thick, dashed, legend: true });
        }
        self.svg(&format!("{metric}-{}.svg", a.name()), &c)
    }

    /// The lines an accuracy chart of `a` is read against: chance, and
    /// relu's level (the mean plateau of its seeds that learned; the
    /// study's baseline where relu is not in it), unless `a` is that
    /// function or the level is too near chance to tell apart.
    fn accuracy_references(&self, a: Activation) -> Vec<Reference> {
        let m = self.m;
        let has_relu = self.data.study.functions.iter().any(|f| f.activation == Activation::Relu);
        let base = if has_relu { Activation::Relu } else { self.data.study.baseline };
        let levels: Vec<f64> = crate::report::rules::cohort(self.data, base, crate::study::spec::Metric::PlateauValAccuracy).into_iter().map(|x| x.1).collect();
        let level = Reference::mean_level(m, base, &levels, REFERENCE_GREY).filter(|r| a != base && r.at - CHANCE_ACCURACY > 0.05);
        std::iter::once(Reference::chance(m)).chain(level).collect()
    }

    /// Every function's mean over seeds, with the min–max band; after one
    /// epoch, where a curve is a single point, each seed's value instead.
    fn overlay(&self, metric: &str) -> Result<String> {
        if self.data.protocol.epochs == 1 {
            return self.one_epoch_overlay(metric);
        }
        let mut c = self.measure_chart(&fill(&self.m.overlay_title, &[("metric", &measure_words(self.m, metric))]), &self.m.axis_epoch, metric);
        (c.size, c.text) = (WIDE, WIDE_TEXT);
        if metric.ends_with("accuracy") {
            // relu is one of the curves: chance is the only line.
            c.references = vec![Reference::chance(self.m)];
        }
        for a in self.acts() {
            let b = self.data.band(a, metric);
            let color = (self.colors)(a);
            if !b.mean.is_empty() {
                c.bands.push(Band { xs: epochs(b.mean.len()), lo: b.min, hi: b.max, color });
                c.series.push(Series { name: a.name().into(), xs: epochs(b.mean.len()), ys: b.mean, color, stroke: Stroke::Thick, dashed: metric.starts_with("val_"), legend: true });
            }
            // Seeds that diverged, or did not learn while others did: each its
            // own line, never in the mean; one legend entry per reason.
            for group in self.set_aside_groups(a) {
                let name = self.set_aside_legend(a, &group);
                for (i, r) in group.iter().enumerate() {
                    let ys: Vec<f64> = r.history.iter().map(|e| e.get(metric)).collect();
                    c.series.push(Series { name: name.clone(), xs: epochs(ys.len()), ys, color, stroke: Stroke::Medium, dashed: metric.starts_with("val_"), legend: i == 0 });
                }
            }
        }
        c.log_y = c.needs_log(50.0);
        self.svg(&format!("overlay-{metric}.svg"), &c)
    }

    /// After one epoch every function's line is a single point, and points
    /// at one x hide each other (three functions at 0.57, two at chance): a
    /// row per function instead, a dot per seed, hollow where the seed did
    /// not learn.
    fn one_epoch_overlay(&self, metric: &str) -> Result<String> {
        let accuracy = metric.ends_with("accuracy");
        let mut rows = Vec::new();
        for a in self.acts() {
            // Learned: above chance after the epoch, seed by seed (a function
            // at chance on every seed has no seed set aside, but no dot filled).
            let points: Vec<(f64, bool)> = self.data.usable(a).filter_map(|r| r.history.first().map(|e| (e.get(metric), e.val_accuracy > crate::report::rules::AT_CHANCE_MAX))).filter(|p| p.0.is_finite()).collect();
            if !points.is_empty() {
                rows.push(SeedRow { label: a.name().to_string(), points, color: (self.colors)(a) });
            }
        }
        let top = rows.iter().flat_map(|r| r.points.iter().map(|p| p.0)).fold(0.0, f64::max);
        let words = measure_words(self.m, metric);
        let chart = SeedsChart {
            title: fill(&self.m.overlay_title, &[("metric", &words)]),
            x_label: words,
            rows,
            references: if accuracy { vec![Reference::chance(self.m)] } else { vec![] },
            x_range: (0.0, if accuracy { 1.0 } else { top * 1.05 }),
        };
        let name = format!("overlay-{metric}.svg");
        write_atomic(&self.dir.join("img").join(&name), chart.render()?.as_bytes())?;
        Ok(format!("img/{name}"))
    }

    /// One steps.csv column of every function that logged it: the mean over
    /// seeds per step, with the min–max band, and each seed set aside (it
    /// did not learn) as its own line. Where a peak would flatten the curves
    /// (a stall's loss of 10 and more beside relu's 2.3) the axis is
    /// logarithmic; where it cannot be (a gradient that is exactly 0) and one
    /// function flattens the others, each function gets its own small chart
    /// and scale.
    fn steps_overlay(&self, column: &str, title: &str) -> Result<Vec<String>> {
        // Per function drawn: its band and mean (where any seed may be
        // averaged), its seeds set aside, and the title of its own chart.
        struct Drawn {
            a: Activation,
            mean: Option<(Band, Series)>,
            set_aside: Vec<Series>,
            title: String,
        }
        let mut drawn: Vec<Drawn> = Vec::new();
        for a in self.acts() {
            let (b, n) = self.data.step_band(a, column);
            let color = (self.colors)(a);
            let mean = (n > 0).then(|| {
                let xs: Vec<f64> = (0..b.mean.len()).map(|i| i as f64).collect();
                (Band { xs: xs.clone(), lo: b.min, hi: b.max, color }, Series { name: format!("{a} (n = {n})"), xs, ys: b.mean, color, stroke: Stroke::Thin, dashed: false, legend: true })
            });
            let mut set_aside = Vec::new();
            for group in self.set_aside_groups(a) {
                let logged: Vec<&Run> = group.into_iter().filter(|r| !r.steps.is_empty()).collect();
                let name = self.set_aside_legend(a, &logged);
                for (i, r) in logged.iter().enumerate() {
                    let ys = r.step_column(column);
                    set_aside.push(Series { name: name.clone(), xs: (0..ys.len()).map(|i| i as f64).collect(), ys, color, stroke: Stroke::Medium, dashed: false, legend: i == 0 });
                }
            }
            if mean.is_some() || !set_aside.is_empty() {
                let title = mean.as_ref().map_or_else(|| a.name().to_string(), |(_, s)| s.name.clone());
                drawn.push(Drawn { a, mean, set_aside, title });
            }
        }
        if drawn.is_empty() {
            return Ok(vec![]);
        }
        // `own`: a function's own chart, whose title names its mean.
        let chart = |title: &str, functions: &[Drawn], own: bool| {
            let mut c = self.measure_chart(title, &self.m.axis_step, column);
            for f in functions {
                if let Some((band, mean)) = &f.mean {
                    c.bands.push(band.clone());
                    c.series.push(Series { legend: !own, ..mean.clone() });
                }
                c.series.extend(f.set_aside.iter().cloned());
            }
            c
        };
        const FLATTENS: f64 = 3.0;
        let mut c = chart(title, &drawn, false);
        (c.size, c.text) = (WIDE, WIDE_TEXT);
        c.log_y = c.needs_log(FLATTENS);
        if c.log_y || !c.flattened(FLATTENS) {
            return Ok(vec![self.svg(&format!("steps-{column}.svg"), &c)?]);
        }
        let mut small = Vec::new();
        for one in &drawn {
            // The column is on the y axis; the small title names the function.
            let c = chart(&one.title, std::slice::from_ref(one), true);
            small.push(self.svg(&format!("steps-{column}-{}.svg", one.a.name()), &c)?);
        }
        Ok(small)
    }

    /// The first logged steps, one by one: what happens before epoch 1 ends.
    fn first_steps(&self) -> Result<String> {
        let m = self.m;
        let dense = ACTIVATED.last().expect("activated layers").name;
        let columns = [
            ("loss".to_string(), m.steps_loss.clone()),
            (format!("{dense}_pre_mean"), fill(&m.steps_pre_mean, &[("layer", dense)])),
            (format!("{dense}_grad_norm"), fill(&m.steps_grad_norm, &[("layer", dense)])),
        ];
        let mut charts = Vec::new();
        for (column, title) in &columns {
            let imgs = self.steps_overlay(column, title)?;
            if !imgs.is_empty() {
                charts.push(format!("{}\n", imgs.iter().map(|img| format!("[![{title}]({img})]({img})")).collect::<Vec<_>>().join(" ")));
            }
        }
        if charts.is_empty() {
            return Ok(String::new());
        }
        let steps = self.data.runs.iter().map(|r| r.steps.len()).max().unwrap_or(0);
        Ok(format!(
            "<a id=\"{FIRST_STEPS_ANCHOR}\"></a>\n\n## {}\n\n{}\n\n{}\n{}",
            m.title_first_steps,
            fill(&m.first_steps_intro, &[("steps", &steps.to_string())]),
            charts.join("\n"),
            self.layer_order()?
        ))
    }

    /// Which layer goes flat first: per run, the first logged step at which
    /// each layer's mean pre-activation is below [`FLAT_PRE_MEAN`], and per
    /// function, how often each layer is the first.
    fn layer_order(&self) -> Result<String> {
        let m = self.m;
        let threshold = crate::report::rules::FLAT_PRE_MEAN;
        let mut table = text::header(&std::iter::once(m.col_function.clone()).chain(std::iter::once(m.col_seed.clone())).chain(ACTIVATED.iter().map(|l| l.name.to_string())).collect::<Vec<_>>());
        let mut words = Vec::new();
        // The timeline: a row per function and layer that any seed took into the tail, a dot per seed at its step.
        let mut rows: Vec<SeedRow> = Vec::new();
        let mut last_step: f64 = 1.0;
        for a in self.acts() {
            let runs: Vec<_> = self.data.usable(a).filter(|r| !r.steps.is_empty()).collect();
            let mut by_layer: Vec<Vec<f64>> = vec![Vec::new(); ACTIVATED.len()];
            if runs.is_empty() {
                continue;
            }
            let mut firsts = vec![0usize; ACTIVATED.len()];
            let mut none = 0;
            for r in &runs {
                let steps = r.step_column("step");
                let passes = crate::report::rules::flat_steps(r);
                // Every layer that passes first (a tie counts for each).
                let first = crate::report::rules::flat_first(&passes);
                first.iter().for_each(|i| firsts[*i] += 1);
                if first.is_empty() {
                    none += 1;
                }
                for (i, p) in passes.iter().enumerate() {
                    by_layer[i].extend(*p);
                }
                last_step = last_step.max(steps.last().copied().unwrap_or(0.0));
                let cells = passes.iter().map(|p| p.map_or("–".to_string(), |s| format!("{s:.0}")));
                table.push_str(&text::row(&[format!("`{a}`"), r.seed.to_string()].into_iter().chain(cells).collect::<Vec<_>>()));
            }
            for (layer, points) in ACTIVATED.iter().zip(by_layer).filter(|(_, p)| !p.is_empty()) {
                rows.push(SeedRow { label: format!("{a} · {}", layer.name), points: points.into_iter().map(|s| (s, true)).collect(), color: (self.colors)(a) });
            }
            let n = runs.len();
            let mut parts: Vec<String> = ACTIVATED
                .iter()
                .zip(&firsts)
                .filter(|(_, k)| **k > 0)
                .map(|(l, k)| fill(&m.layer_first, &[("layer", l.name), ("rate", &text::rate(m, *k, n))]))
                .collect();
            if none > 0 {
                parts.push(fill(&m.layer_none, &[("rate", &text::rate(m, none, n))]));
            }
            words.push(format!("- {}", fill(&m.function_item, &[("function", a.name()), ("text", &parts.join(&m.list_separator))])));
        }
        if words.is_empty() {
            return Ok(String::new());
        }
        let timeline = if rows.is_empty() {
            String::new()
        } else {
            // The axis ends a little past the latest step drawn, not at the last one logged:
            // passes at steps 7–60 were a smudge on an axis to 499.
            let latest = rows.iter().flat_map(|r| r.points.iter().map(|p| p.0)).fold(0.0, f64::max);
            let chart = SeedsChart { title: m.title_layer_order.clone(), x_label: m.axis_step.clone(), rows, references: vec![], x_range: (0.0, (latest * 1.1).max(10.0).min(last_step)) };
            write_atomic(&self.dir.join("img/layer-order.svg"), chart.render()?.as_bytes())?;
            format!("[![{}](img/layer-order.svg)](img/layer-order.svg)\n\n{}\n\n", m.title_layer_order, m.layer_order_caption)
        };
        Ok(format!("\n### {}\n\n{}\n\n{}\n\n{timeline}{}\n", m.title_layer_order, fill(&m.layer_order_intro, &[("threshold", &format!("{threshold}")), ("slope", &format!("{:.3}", 2.0 * crate::engine::math::sigmoid(threshold as f32)))]), words.join("\n"), table))
    }

    /// One diagnostic of one function (averaged over the seeds that may be
    /// averaged), or of one seed set aside: a line per layer (epoch 0:
    /// before training).
    fn diagnostic_chart(&self, a: Activation, seed: Option<&Run>, metric: &str, title: &str) -> Result<String> {
        let who = match seed {
            None => a.name().to_string(),
            Some(r) => self.set_aside_legend(a, &[r]),
        };
        let mut c = self.measure_chart(&format!("{who} — {title}"), &self.m.axis_epoch, metric);
        for (i, layer) in ACTIVATED.iter().enumerate() {
            let v = match seed {
                None => self.data.diagnostic(a, layer.name, metric),
                Some(r) => r.diagnostic(layer.name, metric),
            };
            c.series.push(Series {
                name: layer.name.to_string(),
                xs: v.iter().map(|x| x.0 as f64).collect(),
                ys: v.iter().map(|x| x.1).collect(),
                color: LAYER_COLORS[i],
                stroke: Stroke::Thick,
                dashed: false,
                legend: true,
            });
        }
        c.log_y = metric == "grad_in_mean_abs" && c.series.iter().flat_map(|s| &s.ys).all(|v| *v > 0.0);
        // Shares of a layer's outputs or units start at 0 (all zeros drew an axis from −0.5).
        if matches!(metric, "sparsity" | "zero_slope" | "dead_units") {
            let top = c.series.iter().flat_map(|s| &s.ys).copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
            c.y_range = Some((0.0, if top > 0.0 { top * 1.05 } else { 1.0 }));
        }
        let file = match seed {
            None => format!("diag-{metric}-{}.svg", a.name()),
            Some(r) => format!("diag-{metric}-{}-seed-{}.svg", a.name(), r.seed),
        };
        self.svg(&file, &c)
    }

    /// A shared loss axis for all functions (the article gave softplus_linear a taller one).
    fn loss_ceiling(&self) -> f64 {
        let mut hi: f64 = 2.5;
        for a in self.acts() {
            for c in ["loss", "val_loss"] {
                hi = self.data.band(a, c).max.into_iter().filter(|v| v.is_finite()).fold(hi, f64::max);
            }
        }
        (hi * 1.05).min(8.0)
    }

    /// Copy each seed's history.csv, and one CSV of every run of the study; Markdown links.
    fn csv_links(&self, a: Activation) -> Result<String> {
        let mut links = Vec::new();
        for r in self.data.runs.iter().filter(|r| r.activation == a) {
            if r.usable() {
                let name = format!("{}-seed-{}.csv", a.name(), r.seed);
                write_atomic(&self.dir.join("csv").join(&name), &std::fs::read(r.dir.join("history.csv"))?)?;
                links.push(format!("[{}](csv/{name})", fill(&self.m.seed_link, &[("seed", &r.seed.to_string())])));
            } else {
                links.push(fill(&self.m.seed_state, &[("seed", &r.seed.to_string()), ("state", &text::run_state(self.m, r))]));
            }
        }
        Ok(links.join("<br>"))
    }

    /// All usable runs of the study in one long CSV (function, seed, epoch, history columns).
    fn all_runs_csv(&self) -> Result<String> {
        let mut csv = format!("function,seed,epoch,{}\n", HISTORY_COLUMNS.join(","));
        for r in self.data.runs.iter().filter(|r| r.usable()) {
            for (i, e) in r.history.iter().enumerate() {
                let _ = writeln!(csv, "{},{},{},{},{},{},{}", r.activation, r.seed, i + 1, e.loss, e.accuracy, e.val_loss, e.val_accuracy);
            }
        }
        let name = format!("{}-all-runs.csv", self.data.study.name);
        write_atomic(&self.dir.join("csv").join(&name), csv.as_bytes())?;
        Ok(format!("csv/{name}"))
    }

    pub fn results(&self) -> Result<String> {
        let (acts, m) = (self.acts(), self.m);
        let mut p = format!("# {}\n\n{}", m.title_results, self.banners());
        if !self.has_results() {
            let _ = writeln!(p, "{}", m.no_finished_runs);
            return Ok(p);
        }
        // A designed study answers its question first.
        if let Some(d) = &self.data.study.design {
            p.push_str(&design::section(m, self.data, d));
        }
        // The article's table, under its own heading (each function is an H3
        // beneath it), and how to read it before the charts.
        let all = self.all_runs_csv()?;
        let seed = self.data.study.seeds.first().map_or(String::new(), |s| s.to_string());
        let _ = writeln!(p, "## {}\n\n{}\n", m.title_article_table, fill(&m.curves_caption, &[("csv", &all), ("seed", &seed)]));
        // The article's table, as one row of small multiples per function: it
        // fits any width (three charts side by side on a desktop, stacked on a phone).
        let max_loss = self.loss_ceiling();
        let fig = |src: &str, alt: &str| format!("[![{alt}]({src})]({src})");
        for a in &acts {
            let usable = self.data.usable(*a).count();
            let total = self.data.runs.iter().filter(|r| r.activation == *a).count();
            let name = fill(&m.runs_of, &[("function", a.name()), ("usable", &usable.to_string()), ("total", &total.to_string())]);
            let _ = writeln!(p, "### {name}\n\n{}\n", fill(&m.label_value, &[("label", &m.row_csv), ("value", &self.csv_links(*a)?.replace("<br>", " · "))]));
            let _ = write!(p, "{} ", fig(&self.function_chart(*a)?, a.name()));
            if usable > 0 {
                let _ = write!(p, "{} {}", fig(&self.history_chart(*a, "accuracy", Some((0.0, 1.0)))?, &format!("{a} — {}", m.row_accuracy)), fig(&self.history_chart(*a, "loss", Some((0.0, max_loss)))?, &format!("{a} — {}", m.row_loss_curves)));
            }
            p.push_str("\n\n");
        }
        if !self.data.study.observations.is_empty() {
            let _ = writeln!(p, "{}\n", fill(&m.see_observations, &[("link", &format!("verdicts.md#{}", super::verdicts::OBSERVATIONS_ANCHOR))]));
        }

        let _ = writeln!(p, "<a id=\"{SUMMARY_ANCHOR}\"></a>\n\n## {}\n", m.title_summary);
        // After one epoch the best val_accuracy, its epoch and the plateau
        // are the same number: the table shows it once.
        let one_epoch = self.data.protocol.epochs == 1;
        let plateau_header = fill(&m.col_plateau, &[("measure", &text::last_epochs_measure(m, self.data.protocol.epochs))]);
        let best_headers = [m.col_best.as_str(), &m.col_best_epoch];
        let mut header = vec![m.col_function.as_str(), &m.col_runs, &plateau_header];
        if !one_epoch {
            header.extend(best_headers);
        }
        header.extend([if one_epoch { m.col_gap_one.as_str() } else { &m.col_gap }, &m.col_final_loss, &m.col_training]);
        p.push_str(&text::header(&header));
        let test = self.data.test_images();
        for a in &acts {
            // A function whose seeds split: its numbers are those of the seeds that learned.
            let (cohort, _) = self.data.cohorts(*a);
            let ms: Vec<_> = cohort.iter().filter_map(|r| r.measures()).collect();
            let d = |f: fn(&crate::report::data::Measures) -> f64| describe(&ms.iter().map(f).collect::<Vec<_>>());
            let plateau = d(|x| x.plateau_val_accuracy);
            // Training seconds add up across resumes (a run's wall time is its last process's only).
            // Of the runs in the row: a diverged run's few epochs say nothing of a whole run's time.
            let training = median_epoch_seconds(cohort.iter().filter_map(|r| r.record())).map(|s| s * self.data.protocol.epochs as f64);
            let total = self.data.runs.iter().filter(|r| r.activation == *a).count();
            // Beside the name: the seeds set aside, and why.
            let mut name = format!("`{a}`");
            let diverged = self.data.diverged(*a);
            if !diverged.is_empty() {
                let _ = write!(name, "<br>{}", text::diverged(m, &diverged, self.data.usable(*a).count()));
            }
            if let Some(sp) = crate::report::rules::split(self.data, *a, crate::study::spec::Metric::PlateauValAccuracy) {
                let _ = write!(name, "<br>{}", text::split(m, &sp, test));
            }
            let mut row = vec![
                name,
                format!("{}/{total}", self.data.usable(*a).count()),
                if ms.is_empty() { "–".into() } else { format!("{}<br>{}", text::mean_sd(&plateau), text::ci(&plateau)) },
            ];
            if !one_epoch {
                row.extend([text::mean_sd(&d(|x| x.best_val_accuracy)), if ms.is_empty() { "–".into() } else { format!("{:.1}", d(|x| x.best_epoch as f64).mean) }]);
            }
            row.extend([text::mean_sd(&d(|x| x.overfit_gap)), text::mean_sd(&d(|x| x.final_val_loss)), training.map_or("–".into(), |s| format!("{s:.0}"))]);
            p.push_str(&text::row(&row));
        }
        let measure = if one_epoch { m.ci_measure_one.clone() } else { fill(&m.ci_measure, &[("window", &text::epochs(m, self.data.plateau_window()))]) };
        let note = fill(&m.ci_note, &[("measure", &measure), ("chance", &crate::report::rules::AT_CHANCE_MAX.to_string()), ("diverged_loss", &crate::train::history::DIVERGED_LOSS.to_string())]);
        let _ = writeln!(p, "\n{note}\n");

        let incomplete: Vec<_> = self.data.runs.iter().filter(|r| !r.usable()).collect();
        if !incomplete.is_empty() {
            let _ = writeln!(p, "### {}\n", m.title_not_included);
            p.push_str(&text::header(&[&m.col_function, &m.col_seed, &m.col_state]));
            for r in incomplete {
                p.push_str(&text::row(&[r.activation.name().to_string(), r.seed.to_string(), text::run_state(m, r)]));
            }
            p.push('\n');
        }

        let _ = writeln!(p, "## {}\n", m.title_overlays);
        for metric in ["val_accuracy", "val_loss", "accuracy", "loss"] {
            let img = self.overlay(metric)?;
            let _ = writeln!(p, "[![{metric}]({img})]({img})\n");
        }
        let caption = if self.data.protocol.epochs == 1 { fill(&m.overlay_caption_one_epoch, &[("chance", &crate::report::rules::AT_CHANCE_MAX.to_string())]) } else { m.overlay_caption.clone() };
        let _ = writeln!(p, "{caption}\n");
        p.push_str(&self.first_steps()?);
        p.push_str(&self.leaving_chance()?);

        let _ = writeln!(p, "<a id=\"{DIAGNOSTICS_ANCHOR}\"></a>\n\n## {}\n\n{}\n", m.title_diagnostics, m.diagnostics_intro);
        for (metric, title, what) in diagnostics(m) {
            let _ = writeln!(p, "### {title}\n\n{what}\n");
            for a in &acts {
                let (cohort, set_aside) = self.data.cohorts(*a);
                if !cohort.is_empty() {
                    let img = self.diagnostic_chart(*a, None, metric, title)?;
                    let _ = write!(p, "[![{a} — {title}]({img})]({img}) ");
                }
                for r in set_aside {
                    let img = self.diagnostic_chart(*a, Some(r), metric, title)?;
                    let who = self.set_aside_legend(*a, &[r]);
                    let _ = write!(p, "[![{who} — {title}]({img})]({img}) ");
                }
            }
            p.push_str("\n\n");
        }
        Ok(p)
    }
}
