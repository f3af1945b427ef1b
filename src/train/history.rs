//! Keras' `history`: one row per epoch, written as the article's CSV.

use serde::{Deserialize, Serialize};

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
