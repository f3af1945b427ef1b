//! 目的・条件 (purpose and conditions) and 結果の予想 (predictions).

use super::StudyPages;
use crate::activation::{Activation, kernels::curve};
use crate::report::charts::{LineChart, Series, Stroke};
use crate::report::messages::fill;
use crate::report::text;
use crate::nn::arch::Architecture;
use crate::train::config::Protocol;
use anyhow::Result;
use std::fmt::Write as _;

impl StudyPages<'_> {
    /// The graph of f and f′ (the article's first row).
    pub(super) fn function_chart(&self, a: Activation) -> Result<String> {
        let xs: Vec<f32> = (0..=240).map(|i| -3.0 + i as f32 * 0.025).collect();
        // zero_fit's position depends on the layer's minimum; drawn for min = −3.
        let pts = curve(a, &xs, if a.uses_min() { -3.0 } else { 0.0 });
        let m = self.m;
        let mut c = LineChart::new(a.name(), "x", &m.chart_function_axis);
        c.integer_x = false;
        let x: Vec<f64> = pts.iter().map(|p| p.0 as f64).collect();
        let color = (self.colors)(a);
        c.series.push(Series { name: m.legend_f.clone(), xs: x.clone(), ys: pts.iter().map(|p| p.1 as f64).collect(), color, stroke: Stroke::Thick, dashed: false, legend: true });
        c.series.push(Series { name: m.legend_df.clone(), xs: x, ys: pts.iter().map(|p| p.2 as f64).collect(), color, stroke: Stroke::Thick, dashed: true, legend: true });
        c.y_range = Some((-3.2, 6.2));
        self.svg(&format!("fn-{}.svg", a.name()), &c)
    }

    pub fn purpose(&self) -> Result<String> {
        let (s, m) = (&self.data.study, self.m);
        let mut p = format!("# {}\n\n{}## {}\n\n{}\n\n## {}\n\n", s.title_in(&m.lang), self.banners(), m.title_purpose, s.description_in(&m.lang).trim(), m.title_conditions);
        let ours = &self.data.protocol;
        let intro = if ours.network == Architecture::Article { &m.network_intro } else { &m.network_bn_intro };
        let _ = writeln!(p, "{intro}\n\n```text\n{}\n```\n", ours.network.describe());
        let article = Protocol::ARTICLE;
        let images = |n: Option<usize>, all: &str| n.map_or(all.to_string(), |n| n.to_string());
        let optimizer = |p: &Protocol| text::optimizer(m, &p.optimizer);
        let ds = self.data.runs.iter().find_map(|r| r.record()).map(|r| r.dataset.clone());
        let dataset = ds.as_ref().map_or(m.no_runs_yet.clone(), |d| fill(&m.dataset_detail, &[("name", &d.dataset), ("source", &d.source_sha256[..12]), ("tensors", &d.tensors_sha256[..12])]));
        let seeds = s.seeds.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(&m.list_separator);
        p.push_str(&text::header(&["", m.col_article.as_str(), m.col_these_runs.as_str()]));
        for row in [
            [m.row_epochs.clone(), article.epochs.to_string(), ours.epochs.to_string()],
            [m.row_batch.clone(), article.batch_size.to_string(), fill(&m.batch_detail, &[("batch", &ours.batch_size.to_string())])],
            [m.row_train_images.clone(), m.all_train.clone(), images(ours.train_limit, &m.all_train)],
            [m.row_test_images.clone(), m.all_test.clone(), images(ours.test_limit, &m.all_test)],
            [m.row_optimizer.clone(), optimizer(&article), optimizer(ours)],
            [m.row_init.clone(), m.keras_default.clone(), m.init_detail.clone()],
            [m.row_loss.clone(), m.loss_detail.clone(), m.loss_detail.clone()],
            [m.row_inputs.clone(), m.inputs_detail.clone(), m.inputs_detail.clone()],
            [m.row_seeds.clone(), m.article_one_run.clone(), seeds],
            [m.row_dataset.clone(), m.article_dataset.clone(), dataset],
        ] {
            p.push_str(&text::row(&row));
        }
        if ds.as_ref().is_some_and(|d| d.dataset.contains("JPEG")) {
            let _ = writeln!(p, "\n{}", m.jpeg_note);
        }
        let _ = writeln!(p, "\n### {}\n", m.title_functions);
        p.push_str(&text::header(&[&m.col_function, &m.col_definition, &m.col_graph]));
        for a in self.acts() {
            let img = self.function_chart(a)?;
            p.push_str(&text::row(&[format!("`{}`", a.name()), text::formula(a), format!("[![{}]({img})]({img})", a.name())]));
        }
        let _ = writeln!(p, "\n{}", m.functions_caption);
        if self.acts().iter().any(|a| a.uses_min()) {
            let _ = writeln!(p, "\n{}", m.zero_fit_graph_note);
        }
        Ok(p)
    }

    pub fn predictions(&self) -> String {
        let m = self.m;
        let mut p = format!("# {}\n\n{}{}\n\n", m.title_predictions, self.banners(), m.predictions_intro);
        for f in &self.data.study.functions {
            let _ = writeln!(p, "- {}", fill(&m.label_value, &[("label", &format!("**{}**", f.activation)), ("value", self.data.study.prediction_in(f.activation, &m.lang).unwrap_or(&m.no_prediction))]));
            for c in &f.claims {
                let _ = writeln!(p, "  - {}", fill(&m.checked_as, &[("claim", &text::claim(m, c.metric, c.expect, c.than, self.data.protocol.epochs))]));
            }
        }
        p
    }
}
