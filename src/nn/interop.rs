//! Conversions from the NCHW / OIHW / `[out, in]` layouts used by the
//! reference fixtures (and PyTorch) to actlab's NHWC / HWIO / `[in, out]`.

use super::arch::{pool, Architecture, Role};
use super::plan::Op;
use crate::io::safetensors::SafeTensors;
use anyhow::{bail, Result};

/// `[n, c, h, w]` → `[n, h, w, c]`.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for s in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    out[((s * h + y) * w + xx) * c + ch] = x[((s * c + ch) * h + y) * w + xx];
                }
            }
        }
    }
    out
}

/// Conv kernel `[o, i, kh, kw]` → `[kh, kw, i, o]`.
fn oihw_to_hwio(wt: &[f32], o: usize, i: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; wt.len()];
    for oo in 0..o {
        for ii in 0..i {
            for y in 0..k {
                for x in 0..k {
                    out[((y * k + x) * i + ii) * o + oo] = wt[((oo * i + ii) * k + y) * k + x];
                }
            }
        }
    }
    out
}

/// Dense kernel `[out, in]` → `[in, out]`; for dense1 the input index is also
/// moved from C·H·W flatten order to Keras' H·W·C order.
fn dense_to_in_out(wt: &[f32], out_n: usize, in_n: usize, chw: Option<(usize, usize, usize)>) -> Vec<f32> {
    let mut out = vec![0.0; wt.len()];
    for o in 0..out_n {
        for i in 0..in_n {
            let j = match chw {
                Some((c, h, w)) => {
                    let (ch, rest) = (i / (h * w), i % (h * w));
                    rest * c + ch
                }
                None => i,
            };
            out[j * out_n + o] = wt[o * in_n + i];
        }
    }
    out
}

/// A tensor named `<prefix><layer>.<role>` in the fixtures' layout,
/// converted to actlab's layout for parameter `index` of `network`.
pub fn to_actlab_layout(network: Architecture, index: usize, shape: &[usize], v: &[f32]) -> Result<Vec<f32>> {
    let plan = network.plan();
    let spec = plan.params[index];
    let first_dense = plan.steps.iter().find_map(|s| match s.op {
        Op::Dense { weights, .. } => Some(weights.tensor),
        _ => None,
    });
    if v.len() != spec.len {
        bail!("{}: {} values, expected {}", spec.name(), v.len(), spec.len);
    }
    Ok(match (spec.role == Role::Weight, shape.len()) {
        (false, _) => v.to_vec(),
        (true, 4) => oihw_to_hwio(v, shape[0], shape[1], shape[2]),
        (true, 2) => {
            // The flattened input of the first dense layer comes from NHWC here, NCHW in the fixtures.
            // What the first dense layer flattens: the last pooling's output (both networks).
            let [h, w, c] = pool(1);
            let chw = (Some(index) == first_dense).then_some((c, h / 2, w / 2));
            dense_to_in_out(v, shape[0], shape[1], chw)
        }
        _ => bail!("{}: unexpected shape {shape:?}", spec.name()),
    })
}

/// The flat parameter vector of `network` from tensors named `<prefix><layer>.<role>`.
pub fn load_params(network: Architecture, st: &SafeTensors, prefix: &str) -> Result<Vec<f32>> {
    let mut flat = Vec::new();
    for (i, spec) in network.plan().params.iter().enumerate() {
        let t = st.get(&format!("{prefix}{}", spec.name()))?;
        let v = t.to_f64().into_iter().map(|x| x as f32).collect::<Vec<_>>();
        flat.extend(to_actlab_layout(network, i, &t.shape, &v)?);
    }
    Ok(flat)
}
