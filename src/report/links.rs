//! A small link checker for the built site: every relative `href`/`src` in
//! every HTML file must resolve to a file (external links are not followed).

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// (page, target) for every relative link whose target does not exist.
pub fn broken_links(site: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut broken = Vec::new();
    let mut stack = vec![site.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                let html = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
                for target in targets(&html) {
                    if !resolves(site, &p, &target) {
                        broken.push((p.clone(), target));
                    }
                }
            }
        }
    }
    broken.sort();
    Ok(broken)
}

/// The values of href="…" and src="…" attributes.
fn targets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

fn resolves(site: &Path, page: &Path, target: &str) -> bool {
    let t = target.split(['#', '?']).next().unwrap_or("");
    let external = ["http:", "https:", "mailto:", "javascript:", "data:", "//"].iter().any(|s| target.starts_with(s));
    if external || t.is_empty() {
        return true;
    }
    let t = t.replace("%20", " ");
    let path = if let Some(abs) = t.strip_prefix('/') { site.join(abs) } else { page.parent().unwrap_or(site).join(&t) };
    if t.ends_with('/') { path.join("index.html").is_file() } else { path.exists() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_planted_broken_link_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("en/img")).unwrap();
        std::fs::write(d.path().join("en/img/a.svg"), "<svg/>").unwrap();
        std::fs::write(d.path().join("en/other.html"), "").unwrap();
        std::fs::write(
            d.path().join("en/index.html"),
            r##"<a href="other.html#x">ok</a><img src="img/a.svg"><a href="https://example.org/">ext</a><a href="#top">top</a><img src="img/missing.svg"><a href="../ja/index.html">ja</a>"##,
        )
        .unwrap();
        let b = broken_links(d.path()).unwrap();
        let targets: Vec<&str> = b.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(targets, ["../ja/index.html", "img/missing.svg"]);
    }
}
