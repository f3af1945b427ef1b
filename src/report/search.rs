//! The book's search box, in the edition's language.
//!
//! mdBook indexes words split at spaces (upstream #1081, #2393). Japanese is
//! written without spaces, so each sentence became one token and 過学習
//! found nothing. After mdBook has built an edition, [`finish`]:
//! - for a language written without spaces ([`UNSPACED`]), rebuilds the
//!   search index from mdBook's own stored sections with [`tokens`]: every
//!   run of CJK characters becomes its overlapping bigrams (a lone character
//!   itself), other words stay whole, lower-cased; the page's searcher gets
//!   the same tokenizer for queries (one algorithm, written in Rust here and
//!   in JavaScript in [`TOKENIZER_JS`]; the search-check script exercises
//!   the pair), and every bigram of a query must match (AND), so a word is
//!   found where its characters stand together, not wherever one of them is;
//! - for every edition, puts the searcher's messages and the search box's
//!   placeholder in its language.
//!
//! The files are mdBook's own (`searchindex-<hash>.js`, `searcher-<hash>.js`);
//! a future mdBook that changes them fails the build here, by name, rather
//! than shipping a search box that silently finds nothing.

use super::messages::Messages;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Languages whose text has no spaces between words.
const UNSPACED: [&str; 2] = ["ja", "zh"];

/// Characters indexed as bigrams: the iteration mark 々, kana (with ー),
/// CJK ideographs (extension A, unified, compatibility), half-width kana.
fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3005}' | '\u{3040}'..='\u{30ff}' | '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}' | '\u{f900}'..='\u{faff}' | '\u{ff66}'..='\u{ff9f}')
}

/// Characters of other words: Unicode letters and numbers, and `_`
/// (`[\p{Alphabetic}\p{N}_]` in the JavaScript twin).
fn is_word(c: char) -> bool {
    c.is_alphabetic() || c.is_numeric() || c == '_'
}

/// The search tokens of a text (see the module's comment).
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    let flush_word = |word: &mut String, out: &mut Vec<String>| {
        if !word.is_empty() {
            out.push(word.to_lowercase());
            word.clear();
        }
    };
    let flush_run = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|w| w.iter().collect())),
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            flush_word(&mut word, &mut out);
            run.push(c);
        } else if is_word(c) {
            flush_run(&mut run, &mut out);
            word.push(c);
        } else {
            flush_word(&mut word, &mut out);
            flush_run(&mut run, &mut out);
        }
    }
    flush_word(&mut word, &mut out);
    flush_run(&mut run, &mut out);
    out
}

/// [`tokens`] in JavaScript, replacing elasticlunr's query tokenizer.
const TOKENIZER_JS: &str = r#"elasticlunr.tokenizer = function (str) {
            var cjk = /[\u3005\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]/;
            var wordChar = /[\p{Alphabetic}\p{N}_]/u;
            var out = [], word = "", run = [];
            function flushWord() { if (word) { out.push(word.toLowerCase()); word = ""; } }
            function flushRun() {
                if (run.length === 1) out.push(run[0]);
                for (var i = 0; i + 1 < run.length; i++) out.push(run[i] + run[i + 1]);
                run = [];
            }
            if (str === null || str === undefined) return out;
            Array.from(String(str)).forEach(function (c) {
                if (cjk.test(c)) { flushWord(); run.push(c); }
                else if (wordChar.test(c)) { flushRun(); word += c; }
                else { flushWord(); flushRun(); }
            });
            flushWord(); flushRun();
            return out;
        };
        "#;

/// The language of the rebuilt index: [`tokens`], and no trimmer, stop
/// words or stemmer (elasticlunr's are English; its trimmer strips every
/// non-ASCII character, which would empty a Japanese query).
struct Unspaced;

impl elasticlunr::Language for Unspaced {
    fn name(&self) -> String {
        "Unspaced".into()
    }
    fn code(&self) -> String {
        "unspaced".into()
    }
    fn tokenize(&self, text: &str) -> Vec<String> {
        tokens(text)
    }
    fn make_pipeline(&self) -> elasticlunr::pipeline::Pipeline {
        elasticlunr::pipeline::Pipeline { queue: Vec::new() }
    }
}

/// The one file of `dir` named `<stem>-<hash>.js` (or `<stem>.js`).
fn mdbook_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name == format!("{stem}.js") || (name.starts_with(&format!("{stem}-")) && name.ends_with(".js") && !name.ends_with(".min.js")) {
            found.push(dir.join(name));
        }
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => bail!("expected one {stem}.js from mdBook in {}, found {}: this mdBook writes its search files differently; update src/report/search.rs", dir.display(), found.len()),
    }
}

/// mdBook's wrapper around the index: a JSON text inside a JavaScript
/// string in single quotes, with `\` and `'` escaped.
const INDEX_PREFIX: &str = "window.search = Object.assign(window.search, JSON.parse('";
const INDEX_SUFFIX: &str = "'));";

fn unwrap_index(js: &str) -> Option<String> {
    let inner = js.strip_prefix(INDEX_PREFIX)?.strip_suffix(INDEX_SUFFIX)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

fn wrap_index(json: &str) -> String {
    format!("{INDEX_PREFIX}{}{INDEX_SUFFIX}", json.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Rebuilds mdBook's index (its JSON text) with [`tokens`]; every other
/// field is kept, but the search is made AND.
fn reindex(json: &str) -> Result<String> {
    let mut j: serde_json::Value = serde_json::from_str(json).context("mdBook's search index is not the JSON this code knows")?;
    let fields: Vec<String> = serde_json::from_value(j["index"]["fields"].clone()).context("the search index has no `index.fields`")?;
    let docs = j["index"]["documentStore"]["docs"].as_object().context("the search index stores no sections (`index.documentStore.docs`)")?;
    let mut refs: Vec<(usize, &serde_json::Value)> = docs.iter().map(|(k, v)| k.parse().map(|n| (n, v))).collect::<Result<_, _>>().context("a search section's ref is not a number")?;
    refs.sort_by_key(|(n, _)| *n);
    let mut index = elasticlunr::Index::with_language(Box::new(Unspaced), &fields);
    for (n, doc) in refs {
        let values: Vec<&str> = fields.iter().map(|f| doc[f].as_str().unwrap_or("")).collect();
        index.add_doc(&n.to_string(), values);
    }
    j["index"] = serde_json::to_value(&index)?;
    j["search_options"]["bool"] = "AND".into();
    Ok(serde_json::to_string(&j)?)
}

/// A message template with `{count}` and `{term}` as a JavaScript expression
/// over the searcher's `count` and `searchterm`.
fn js_template(template: &str) -> String {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        let (lit, tail) = rest.split_at(at);
        let (var, len) = if tail.starts_with("{count}") {
            ("count", 7)
        } else if tail.starts_with("{term}") {
            ("searchterm", 6)
        } else {
            ("", 0)
        };
        if len == 0 {
            parts.push(serde_json::to_string(lit).unwrap());
            parts.push(serde_json::to_string(&tail[..1]).unwrap());
            rest = &tail[1..];
            continue;
        }
        parts.push(serde_json::to_string(lit).unwrap());
        parts.push(var.to_string());
        rest = &tail[len..];
    }
    parts.push(serde_json::to_string(rest).unwrap());
    parts.retain(|p| p != "\"\"");
    if parts.is_empty() { "\"\"".into() } else { parts.join(" + ") }
}

/// Replaces `from` in `text` exactly once, or says which mdBook text is gone.
fn replace_once(text: &mut String, from: &str, to: &str, file: &Path) -> Result<()> {
    match text.matches(from).count() {
        1 => {
            *text = text.replacen(from, to, 1);
            Ok(())
        }
        n => bail!("{}: expected mdBook's `{}` once, found it {n} times; update src/report/search.rs for this mdBook", file.display(), from.lines().next().unwrap_or(from)),
    }
}

/// Rewrites a built edition's search files (see the module's comment).
pub fn finish(html: &Path, m: &Messages) -> Result<()> {
    let searcher_path = mdbook_file(html, "searcher")?;
    let mut searcher = std::fs::read_to_string(&searcher_path)?;
    let metric = format!(
        "function formatSearchMetric(count, searchterm) {{\n        if (count === 1) {{\n            return {};\n        }} else if (count === 0) {{\n            return {};\n        }} else {{\n            return {};\n        }}\n    }}\n    if (searchbar) {{\n        searchbar.setAttribute('placeholder', {});\n    }}",
        js_template(&m.search_results_one),
        js_template(&m.search_results_none),
        js_template(&m.search_results_many),
        serde_json::to_string(&m.search_placeholder)?
    );
    let start = searcher.find("function formatSearchMetric(").with_context(|| format!("{}: mdBook's formatSearchMetric is gone; update src/report/search.rs", searcher_path.display()))?;
    let end = start + searcher[start..].find("\n    }\n").with_context(|| format!("{}: cannot find the end of formatSearchMetric", searcher_path.display()))? + "\n    }".len();
    searcher.replace_range(start..end, &metric);
    if UNSPACED.contains(&m.lang.as_str()) {
        let load = "searchindex = elasticlunr.Index.load(config.index);";
        replace_once(&mut searcher, load, &format!("{TOKENIZER_JS}{load}"), &searcher_path)?;
        // The teaser marks the words that begin with a query term; a
        // Japanese "word" (up to the next space) holds the term inside it.
        replace_once(&mut searcher, "elasticlunr.stemmer(word).startsWith(", "elasticlunr.stemmer(word).includes(", &searcher_path)?;
        let index_path = mdbook_file(html, "searchindex")?;
        let js = std::fs::read_to_string(&index_path)?;
        let json = unwrap_index(&js).with_context(|| format!("{}: not the `window.search = …JSON.parse('…')` this code knows; update src/report/search.rs", index_path.display()))?;
        crate::io::write_atomic(&index_path, wrap_index(&reindex(&json)?).as_bytes())?;
    }
    crate::io::write_atomic(&searcher_path, searcher.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn japanese_runs_become_bigrams_and_other_words_stay_whole() {
        assert_eq!(tokens("過学習"), ["過学", "学習"]);
        assert_eq!(tokens("relu は頭打ち。"), ["relu", "は頭", "頭打", "打ち"]);
        assert_eq!(tokens("Softplus_Linear: 50 エポック"), ["softplus_linear", "50", "エポ", "ポッ", "ック"]);
        assert_eq!(tokens("差（n = 3）"), ["差", "n", "3"]);
        assert_eq!(tokens("  —  "), Vec::<String>::new());
    }

    #[test]
    fn the_index_wrapper_round_trips_quotes_and_backslashes() {
        let json = r#"{"a":"it's a \"q\" \\ back"}"#;
        assert_eq!(unwrap_index(&wrap_index(json)).as_deref(), Some(json));
    }

    #[test]
    fn a_reindexed_index_finds_a_japanese_word_by_its_bigrams_only_where_they_stand() {
        let json = r#"{"doc_urls":["a.html","b.html"],"results_options":{"limit_results":30,"teaser_word_count":30},
            "search_options":{"bool":"OR","expand":true,"fields":{"title":{"boost":2},"body":{"boost":1}}},
            "index":{"fields":["title","body"],"documentStore":{"docs":{
              "0":{"id":"0","title":"過学習","body":"学習の差が過学習です"},
              "1":{"id":"1","title":"学習","body":"学習画像"}}}}}"#;
        let out: serde_json::Value = serde_json::from_str(&reindex(json).unwrap()).unwrap();
        assert_eq!(out["search_options"]["bool"], "AND");
        assert_eq!(out["doc_urls"][1], "b.html");
        let body = &out["index"]["index"]["body"]["root"];
        // 過学 is in section 0 only; 学習 in both.
        let docs_of = |bigram: &str| -> Vec<String> {
            let mut node = body;
            for c in bigram.chars() {
                node = &node[c.to_string()];
            }
            let mut v: Vec<String> = node["docs"].as_object().unwrap().keys().cloned().collect();
            v.sort();
            v
        };
        assert_eq!(docs_of("過学"), ["0"]);
        assert_eq!(docs_of("学習"), ["0", "1"]);
        assert!(out["index"]["pipeline"].as_array().unwrap().is_empty(), "no English trimmer or stemmer on Japanese");
    }

    #[test]
    fn message_templates_become_javascript_expressions() {
        assert_eq!(js_template("「{term}」の検索結果 {count} 件"), r#""「" + searchterm + "」の検索結果 " + count + " 件""#);
        assert_eq!(js_template("No results for '{term}'."), r#""No results for '" + searchterm + "'.""#);
        assert_eq!(js_template("{a}"), r#""{" + "a}""#);
    }
}
