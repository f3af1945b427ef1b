//! A study's hypothesis as a whole: decided by its 2x2 design
//! ([`super::design::verdict`]) or, for a study without one, by the claims
//! of the functions its `[hypothesis]` names, under the rule of
//! [`combine`]. Two studies may ask the same question with different
//! designs (`same_question_as`); [`comparison`] says whether their
//! verdicts agree, only ever at one protocol.

use super::data::StudyData;
use super::design;
use super::messages::{Messages, fill};
use super::rules::{self, Judged, Verdict};
use super::text;

/// The verdict of a hypothesis decided by several claims: contradicted if
/// any claim is contradicted; supported only if every one is supported;
/// otherwise the first reason it cannot be decided (not applicable, then
/// too few seeds), else inconclusive.
fn combine(verdicts: &[Verdict]) -> Verdict {
    if verdicts.is_empty() {
        return Verdict::TooFewSeeds { have: 0, needed: None };
    }
    if verdicts.contains(&Verdict::Contradicted) {
        return Verdict::Contradicted;
    }
    if verdicts.iter().all(|v| *v == Verdict::Supported) {
        return Verdict::Supported;
    }
    let first = |pick: fn(&Verdict) -> bool| verdicts.iter().find(|v| pick(v)).cloned();
    first(|v| matches!(v, Verdict::NotApplicable(_))).or_else(|| first(|v| matches!(v, Verdict::TooFewSeeds { .. }))).unwrap_or(Verdict::Inconclusive)
}

/// The judged claims that decide a `[hypothesis]` (None without one): its
/// own claims (their own Holm family), or those of the functions it names.
pub fn deciding_claims(data: &StudyData) -> Option<Vec<Judged>> {
    let h = data.study.hypothesis.as_ref()?;
    if !h.claims.is_empty() {
        let own: Vec<_> = h.claims.iter().map(|(f, c)| (*f, c)).collect();
        return Some(rules::judge_claims(data, &own));
    }
    Some(rules::judge(data).into_iter().filter(|j| h.decided_by.contains(&j.function)).collect())
}

fn combined(claims: &[Judged]) -> Verdict {
    combine(&claims.iter().map(|j| j.verdict.clone()).collect::<Vec<_>>())
}

/// The study's verdict on its hypothesis, if it states one.
pub fn verdict(data: &StudyData) -> Option<Verdict> {
    match &data.study.design {
        Some(d) => Some(design::verdict(data, d)),
        None => deciding_claims(data).map(|c| combined(&c)),
    }
}

/// One sentence: the verdict of a `[hypothesis]` and the claims behind it
/// (a design states its own, [`design::verdict_sentence`]).
pub fn sentence(m: &Messages, data: &StudyData) -> Option<String> {
    let s = &data.study;
    if let Some(d) = &s.design {
        return Some(design::verdict_sentence(m, data, d));
    }
    let judged = deciding_claims(data)?;
    let claims: Vec<String> = judged
        .iter()
        .map(|j| fill(&m.answer_claim, &[("function", j.function.name()), ("claim", &text::claim(m, j.claim.metric, j.claim.expect, j.claim.than, data.protocol.epochs)), ("verdict", &text::verdict(m, &j.verdict))]))
        .collect();
    Some(fill(
        &m.hypothesis_verdict,
        &[("hypothesis", s.hypothesis_in(&m.lang).unwrap_or("")), ("verdict", &text::verdict(m, &combined(&judged))), ("claims", &claims.join(&m.clause_separator))],
    ))
}

/// The path from `from`'s Verdicts page to `to`'s at the same protocol (a
/// study's own protocol sits in its folder, a reduction one level down).
fn verdicts_link(from: &StudyData, to: &StudyData) -> String {
    let page = |d: &StudyData| if d.protocol == d.study.protocol { format!("{}/verdicts.md", d.study.name) } else { format!("{}/{}/verdicts.md", d.study.name, d.protocol.slug()) };
    let up = if from.protocol == from.study.protocol { "../" } else { "../../" };
    format!("{up}{}", page(to))
}

/// The name of the study another asks the same question as.
fn same_question_as(data: &StudyData) -> Option<&str> {
    data.study.hypothesis.as_ref()?.same_question_as.as_deref()
}

/// Whether this study and the one asking the same question (named either
/// way round) agree, at this study's protocol: None when there is no such
/// study among `peers` at this protocol.
pub fn comparison(m: &Messages, data: &StudyData, peers: &[StudyData]) -> Option<String> {
    let name = data.study.name.as_str();
    let other = peers.iter().find(|d| d.protocol == data.protocol && d.study.name != name && (same_question_as(data) == Some(d.study.name.as_str()) || same_question_as(d) == Some(name)))?;
    let (ours, theirs) = (verdict(data)?, verdict(other)?);
    let decided = |v: &Verdict| matches!(v, Verdict::Supported | Verdict::Contradicted);
    let key = match (decided(&ours), decided(&theirs)) {
        (true, true) if ours == theirs => &m.designs_agree,
        (true, true) => &m.designs_disagree,
        _ => &m.designs_undecided,
    };
    Some(fill(
        key,
        &[
            ("verdict", &text::verdict(m, &ours)),
            ("other", other.study.title_in(&m.lang)),
            ("other_link", &verdicts_link(data, other)),
            ("other_verdict", &text::verdict(m, &theirs)),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;
    use crate::report::rules::NotApplicable as Why;

    #[test]
    fn the_combination_rule() {
        use Verdict::{Contradicted, Inconclusive, Supported, TooFewSeeds};
        let na = Verdict::NotApplicable(Why::TooShort { function: Activation::Relu, epochs: 5 });
        let few = TooFewSeeds { have: 3, needed: Some(9) };
        assert_eq!(combine(&[Supported, Supported]), Supported);
        assert_eq!(combine(&[Supported, Contradicted, na.clone()]), Contradicted);
        assert_eq!(combine(&[Supported, Inconclusive]), Inconclusive);
        assert_eq!(combine(&[Inconclusive, few.clone(), na.clone()]), na);
        assert_eq!(combine(&[Supported, few.clone(), Inconclusive]), few);
        assert_eq!(combine(&[]), TooFewSeeds { have: 0, needed: None });
    }
}
