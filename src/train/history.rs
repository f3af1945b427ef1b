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

/// An epoch's mean loss (training or validation) above which the run has
/// diverged. A uniform guess over the ten classes scores ln 10 ≈ 2.3 and a
/// network that learns stays near or below that; a mean above 100 means the
/// right class gets, on average, a probability below e^-100 — logits that
/// have run away. Such a loss does not come back: it grows by orders of
/// magnitude per epoch (a wrong training slope, relu_straight_through, went
/// from 5 to 2·10^4 in two epochs) and would take over a hundred epochs more
/// to overflow f32, all of them at chance. Stopping there saves that compute;
/// the rule is part of every protocol and the book states it.
pub const DIVERGED_LOSS: f64 = 100.0;

impl Epoch {
    /// Whether the run diverged at this epoch: its loss or val_loss is not
    /// finite or above [`DIVERGED_LOSS`]. The run stops here.
    pub fn diverged(&self) -> bool {
        ![self.loss, self.val_loss].iter().all(|l| l.is_finite() && *l <= DIVERGED_LOSS)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_diverges_where_a_loss_passes_the_bound_or_is_not_finite() {
        let at = |loss: f64, val_loss: f64| Epoch { loss, accuracy: 0.1, val_loss, val_accuracy: 0.1 };
        assert!(!at(2.3, 2.3).diverged());
        assert!(!at(DIVERGED_LOSS, DIVERGED_LOSS).diverged(), "the bound itself is still a loss");
        for (loss, val_loss) in [(DIVERGED_LOSS * 1.001, 2.3), (2.3, 1e11), (f64::NAN, 2.3), (2.3, f64::INFINITY)] {
            assert!(at(loss, val_loss).diverged(), "{loss} / {val_loss}");
        }
    }
}
