//! The generated text of the book, one catalogue per language
//! (`book/i18n/<lang>.toml`). Every key is a required field: a catalogue
//! that lacks one fails to load, naming the file and the key, so a missing
//! translation can never become an empty string. Adding a language is
//! adding a file (and its hand-written pages in `book/src/<lang>/`).
//!
//! Templates use `{name}` placeholders, filled by [`fill`].

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

macro_rules! catalogue {
    ($($key:ident),* $(,)?) => {
        #[derive(Clone, Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Messages {
            $(pub $key: String,)*
        }
        impl Messages {
            /// Every (key, text) pair, for completeness checks.
            pub fn entries(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($key), self.$key.as_str()),)*]
            }
        }
    };
}

catalogue! {
    title_leaving_chance, leaving_chance_intro, col_left_chance, not_left, col_pre_mean_at, col_dead_from, value_range,
    predict_all_left, predict_all_stayed, predict_overlaps, predict_separates, predict_too_few,
    lang, language_name, title_purpose_conditions, title_purpose, title_conditions, title_functions,
    title_predictions, title_results, title_summary, title_not_included, title_overlays, title_diagnostics,
    title_verdicts, title_discussion, title_numbers, title_notes, title_reproducibility, title_runs_hashes,
    title_introduction, title_reproduce, network_intro, network_bn_intro, row_epochs, row_batch, batch_detail, row_optimizer,
    optimizer_detail, optimizer_detail_sgd, protocol_sgd, row_init, init_detail, row_loss, loss_detail, row_inputs, inputs_detail, row_seeds,
    row_dataset, dataset_detail, no_runs_yet, col_function, col_definition, col_graph, zero_fit_graph_note,
    reduced_protocol, all_train, all_test, predictions_intro, no_prediction, checked_as, metric_best,
    metric_final, metric_gap, expect_higher, expect_lower, expect_similar, runs_of, row_function,
    row_accuracy, row_loss_curves, row_csv, seed_link, seed_state, curves_caption, col_runs, col_best,
     col_best_epoch, col_gap, col_gap_one, col_final_loss, col_training, ci_note, ci_measure, ci_measure_one, col_seed, col_state, overlay_title,
    diagnostics_intro, diag_pre_mean, diag_pre_mean_what, diag_post_mean, diag_post_mean_what, diag_sparsity,
    diag_sparsity_what, diag_zero_slope, diag_zero_slope_what, diag_dead_units, diag_dead_units_what,
    diag_grad, diag_grad_what, state_missing, state_partial, state_running, state_done, state_diverged,
    state_corrupt, state_unusable, verdicts_intro, verdicts_similar_rule, verdicts_similar_seeds, col_claim, col_difference, col_interval, col_verdict,
    verdict_supported, verdict_contradicted, verdict_inconclusive, title_design, title_article_table,
    design_intro, design_present, design_absent, design_verdict, design_difference, design_rule, col_removed, col_comparison,
    design_other_present, design_other_absent, design_why_intro, col_grad_vs, no_finished_runs, overfits,
    little_overfitting, peaked, diagnostics_show, no_large_difference, fact_mean_shift, fact_gradient,
    dead_units_end, exact_zeros, axis_epoch, chart_function_axis, legend_f, legend_df, reproducibility_intro,
    col_epochs, col_dataset, col_engine, col_device, col_history_sha, protocol_cell, not_finished,
    front_study, front_runs, front_protocol, front_dataset, front_engine, front_protocol_cell,
    title_appendix_reduced, appendix_study, compute_left, book_title, col_article,
    col_these_runs, row_train_images, row_test_images, keras_default, article_one_run, article_dataset,
    jpeg_note, compute_left_unknown, legend_train, legend_val, col_plateau, metric_plateau, overlay_caption,
    method_paired, method_welch, col_method, col_p, col_p_holm, verdict_too_few_seeds,
    verdict_too_few_seeds_unknown, verdict_too_few_seeds_many, exact_identical_at_chance, verdict_not_applicable, na_did_not_learn, na_diverged, na_diverged_seed, diverged_note, legend_diverged, legend_diverged_seeds, na_control_matches, na_still_rising, na_too_short, na_one_epoch, overfit_not_judged_any, fact_gradient_zero, verdicts_none,
    link_summary, link_diagnostics, ranking, ranking_resolved, ranking_unresolved, ranking_one_seed,
    overfit_unclear, overfit_one_seed, overfit_not_judged, starts_stalled, starts_some_stalled, at_chance_words, did_not_learn_words,
    ranking_split_entry, split_sentence, dead_units_end_seed, legend_set_aside, legend_set_aside_seeds, starts_behind, answer_title, answer_intro,
    answer_protocol, answer_progress, answer_claim, answer_design, answer_chart_title, answer_chart_caption,
    answer_none, answer_reduced, answer_lead, answer_baseline, answer_below, answer_above, answer_not_apart,
    answer_level_only, answer_seed_learned, answer_split, answer_hypothesis, answer_follow_up_intro, answer_follow_up,
    answer_chart_alt, answer_reference_baseline, answer_reference_chance, answer_left, answer_left_unknown,
    answer_all_verdicts, verdict_no_runs, title_observations, observations_intro, col_article_words,
    col_measured, col_result, obs_reproduced, obs_not_reproduced, obs_not_testable, untestable_no_runs,
    untestable_shorter, untestable_unresolved, measured_gap, measured_gap_by_seed, gap_seed, measured_levels, measured_difference,
    rate, seed_value, value_plain, value_at_chance, answer_seed_not_learned, list_separator, split_note, exact_identical, exact_same_difference, metric_after_one,
    metric_mean_last, obs_partly, stall_seed_no_stall, stall_seed_left, stall_seed_never,
    quote, metric_first, chart_one_seed, answer_study, see_observations, functions_caption,
    axis_step, steps_loss, steps_pre_mean, steps_grad_norm, title_first_steps, first_steps_intro, title_layer_order, layer_order_intro, layer_first, layer_none, function_item,
    hypothesis_verdict, designs_agree, designs_disagree, designs_undecided, sentence_end,
    duration_minutes, duration_hours, protocol_learning_rate, protocol_network, epoch_count_one,
    epoch_count, facts_sentence, fact_separator, search_results_one, search_results_none, search_results_many, search_placeholder, dataset_tensors, repro_data_title, repro_data_intro, repro_dataset_item, duration_seconds, clause_separator, interval_method, label_value, layer_order_caption, repro_time_title, repro_time_intro, col_median_run, col_all_runs, repro_verify_time, repro_engine_title, repro_engine_intro, col_commit, col_arithmetic, col_studies, front_engine_commits,
    measure_val, measure_grad_norm, axis_log, seeds_value, overlay_caption_one_epoch,
}

impl Messages {
    pub fn load(dir: &Path, lang: &str) -> Result<Messages> {
        let path = dir.join(format!("{lang}.toml"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("no message catalogue {} for language `{lang}`", path.display()))?;
        let m: Messages = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if m.lang != lang {
            bail!("{}: `lang` is \"{}\", expected \"{lang}\"", path.display(), m.lang);
        }
        for (k, v) in m.entries() {
            if v.trim().is_empty() {
                bail!("{}: `{k}` is empty; translate it", path.display());
            }
        }
        Ok(m)
    }

    /// The languages with a catalogue in `dir`, English first.
    pub fn languages(dir: &Path) -> Result<Vec<String>> {
        let mut langs: Vec<String> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list message catalogues in {}", dir.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.path().file_stem().filter(|_| e.path().extension().is_some_and(|x| x == "toml")).map(|s| s.to_string_lossy().into_owned()))
            .collect();
        langs.sort_by_key(|l| (l != "en", l.clone()));
        Ok(langs)
    }
}

/// Replace `{name}` placeholders.
pub fn fill(template: &str, args: &[(&str, &str)]) -> String {
    let mut s = template.to_string();
    for (k, v) in args {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

/// The placeholders a template uses, e.g. `["function", "value"]`.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut out: Vec<String> = template.split('{').skip(1).filter_map(|p| p.split_once('}').map(|(k, _)| k.to_string())).filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).collect();
    out.sort();
    out.dedup();
    out
}
