//! Keras' `history`: one row per epoch, written as the article's CSV.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const HEADER: &str = "loss,accuracy,val_loss,val_accuracy";

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Epoch {
    /// Mean training loss over the epoch's samples (training mode, dropout on).
    pub loss: f64,
    pub accuracy: f64,
    /// On the test set in inference mode.
    pub val_loss: f64,
    pub val_accuracy: f64,
}

/// The CSV text: header, then one row per epoch. Numbers are printed in
/// their shortest round-trip form, so the bytes are a function of the values.
pub fn to_csv(rows: &[Epoch]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!("{},{},{},{}\n", r.loss, r.accuracy, r.val_loss, r.val_accuracy));
    }
    s
}

pub fn parse_csv(text: &str, origin: &Path) -> Result<Vec<Epoch>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if header.trim() != HEADER {
        bail!("{}: first line must be `{HEADER}`, found `{header}`", origin.display());
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Vec<f64> = l
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .with_context(|| format!("{}: line {}: not four numbers: `{l}`", origin.display(), i + 2))?;
            if v.len() != 4 {
                bail!("{}: line {}: expected 4 columns, found {}", origin.display(), i + 2, v.len());
            }
            Ok(Epoch { loss: v[0], accuracy: v[1], val_loss: v[2], val_accuracy: v[3] })
        })
        .collect()
}
