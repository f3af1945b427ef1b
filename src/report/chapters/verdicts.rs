//! Verdicts: each prediction's checkable parts against the measurements,
//! by the rules of [`crate::report::rules`].

use super::StudyPages;
use crate::report::data::PLATEAU_EPOCHS;
use crate::report::hypothesis;
use crate::report::messages::fill;
use crate::report::observations;
use crate::report::data::TREND_EPOCHS;
use crate::report::rules::{self, AT_CHANCE_MAX, OVERFIT_GAP, RISING_SLOPE};
use crate::report::stats::{ALPHA, CONFIDENCE_PERCENT};
use crate::report::text;
use crate::train::history::DIVERGED_LOSS;
use std::fmt::Write as _;

/// The anchor of the observations table, which the results page links to.
pub const OBSERVATIONS_ANCHOR: &str = "observations";

impl StudyPages<'_> {
    pub fn verdicts(&self) -> String {
        let (m, s) = (self.m, &self.data.study);
        // The rule for "similar" claims only where the study has a margin for them.
        let (similar, similar_seeds) = if s.similar_margin.is_finite() {
            (fill(&m.verdicts_similar_rule, &[("margin", &s.similar_margin.to_string())]), m.verdicts_similar_seeds.clone())
        } else {
            (String::new(), String::new())
        };
        let judged = rules::judge(self.data);
        if judged.is_empty() && s.observations.is_empty() {
            // A study of one function (a seed screen) compares nothing: no table of nothing.
            return format!("# {}\n\n{}{}\n", m.title_verdicts, self.banners(), m.verdicts_none);
        }
        let mut p = format!(
            "# {}\n\n{}{}\n\n",
            m.title_verdicts,
            self.banners(),
            fill(
                &m.verdicts_intro,
                &[
                    ("similar", &similar),
                    ("similar_seeds", &similar_seeds),
                    ("baseline", s.baseline.name()),
                    ("confidence", &CONFIDENCE_PERCENT.to_string()),
                    ("alpha", &ALPHA.to_string()),
                    ("window", &text::epochs(m, PLATEAU_EPOCHS)),
                    ("chance", &AT_CHANCE_MAX.to_string()),
                    ("diverged_loss", &DIVERGED_LOSS.to_string()),
                ]
            )
        );
        for line in [hypothesis::sentence(m, self.data), hypothesis::comparison(m, self.data, self.peers)].into_iter().flatten() {
            let _ = writeln!(p, "{line}\n");
        }
        p.push_str(&text::header(&[&m.col_function, &m.col_claim, &m.col_method, &m.col_difference, &m.col_interval, &m.col_p, &m.col_p_holm, &m.col_verdict]));
        let (epochs, test) = (self.data.protocol.epochs, self.data.test_images());
        for j in judged {
            p.push_str(&text::row(&[
                format!("`{}`", j.function),
                text::claim(m, j.claim.metric, j.claim.expect, j.claim.than, epochs),
                text::judged_method(m, &j, test),
                j.difference.as_ref().map_or("–".into(), |d| text::signed(d.estimate)),
                j.interval().map_or("–".into(), text::interval),
                text::p_value(j.p),
                text::p_value(j.p_holm),
                format!("**{}**", text::verdict(m, &j.verdict)),
            ]));
        }
        if !s.observations.is_empty() {
            let intro = fill(
                &m.observations_intro,
                &[
                    ("chance", &AT_CHANCE_MAX.to_string()),
                    ("gap", &OVERFIT_GAP.to_string()),
                    ("window", &text::epochs(m, TREND_EPOCHS)),
                    ("rising", &RISING_SLOPE.to_string()),
                ],
            );
            let _ = writeln!(p, "\n<a id=\"{OBSERVATIONS_ANCHOR}\"></a>\n\n## {}\n\n{intro}\n", m.title_observations);
            p.push_str(&text::header(&[&m.col_function, &m.col_article_words, &m.col_measured, &m.col_result]));
            for o in &s.observations {
                let (what, outcome) = observations::check(self.data, o);
                p.push_str(&text::row(&[format!("`{}`", o.function), fill(&m.quote, &[("text", o.article_in(&m.lang))]), text::measured(m, o, &what, test), format!("**{}**", text::outcome(m, &outcome))]));
            }
        }
        p
    }
}
