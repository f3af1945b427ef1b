//! Verdicts: each prediction's checkable parts against the measurements,
//! by the rules of [`crate::report::rules`].

use super::StudyPages;
use crate::report::data::PLATEAU_EPOCHS;
use crate::report::hypothesis;
use crate::report::messages::fill;
use crate::report::observations;
use crate::report::rules::{self, AT_CHANCE_MAX, STILL_RISING};
use crate::report::stats::{ALPHA, CONFIDENCE_PERCENT};
use crate::report::text;
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
                    ("rising", &STILL_RISING.to_string()),
                ]
            )
        );
        for line in [hypothesis::sentence(m, self.data), hypothesis::comparison(m, self.data, self.peers)].into_iter().flatten() {
            let _ = writeln!(p, "{line}\n");
        }
        p.push_str(&text::header(&[&m.col_function, &m.col_claim, &m.col_method, &m.col_difference, &m.col_interval, &m.col_p, &m.col_p_holm, &m.col_verdict]));
        for j in rules::judge(self.data) {
            p.push_str(&text::row(&[
                format!("`{}`", j.function),
                text::claim(m, j.claim.metric, j.claim.expect, j.claim.than),
                j.difference.as_ref().map_or("–".into(), |d| text::method(m, d)),
                j.difference.as_ref().map_or("–".into(), |d| text::signed(d.estimate)),
                j.interval().map_or("–".into(), text::interval),
                text::p_value(j.p),
                text::p_value(j.p_holm),
                format!("**{}**", text::verdict(m, &j.verdict)),
            ]));
        }
        if !s.observations.is_empty() {
            let _ = writeln!(p, "\n<a id=\"{OBSERVATIONS_ANCHOR}\"></a>\n\n## {}\n\n{}\n", m.title_observations, fill(&m.observations_intro, &[("chance", &AT_CHANCE_MAX.to_string())]));
            p.push_str(&text::header(&[&m.col_function, &m.col_article_words, &m.col_measured, &m.col_result]));
            for o in &s.observations {
                let (what, outcome) = observations::check(self.data, o);
                p.push_str(&text::row(&[format!("`{}`", o.function), fill(&m.quote, &[("text", o.article_in(&m.lang))]), text::measured(m, o, &what), format!("**{}**", text::outcome(m, &outcome))]));
            }
        }
        p
    }
}
