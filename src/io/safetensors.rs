//! The safetensors format: an 8-byte little-endian header length, a JSON
//! header (`{name: {dtype, shape, data_offsets}, "__metadata__": {..}}`) and
//! raw little-endian data. Used for the reference fixtures and checkpoints.

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Data,
}

impl Tensor {
    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor { shape, data: Data::F32(v) }
    }
    /// The values as f64, whatever the stored float/int type.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U8(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SafeTensors {
    pub tensors: BTreeMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

impl SafeTensors {
    pub fn read(path: &Path) -> Result<SafeTensors> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        SafeTensors::parse(&bytes).with_context(|| format!("{} is not a valid safetensors file", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<SafeTensors> {
        if bytes.len() < 8 {
            bail!("file is shorter than its 8-byte header length");
        }
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let body_start = 8usize.checked_add(hlen).filter(|&e| e <= bytes.len()).context("header length points past the end (truncated file?)")?;
        let header: Map<String, Value> = serde_json::from_slice(&bytes[8..body_start]).context("header is not a JSON object")?;
        let body = &bytes[body_start..];
        let mut out = SafeTensors::default();
        for (name, v) in header {
            if name == "__metadata__" {
                if let Value::Object(m) = v {
                    for (k, v) in m {
                        out.metadata.insert(k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()));
                    }
                }
                continue;
            }
            let dtype = v["dtype"].as_str().with_context(|| format!("tensor {name}: no dtype"))?;
            let shape: Vec<usize> = serde_json::from_value(v["shape"].clone()).with_context(|| format!("tensor {name}: bad shape"))?;
            let offs: [usize; 2] = serde_json::from_value(v["data_offsets"].clone()).with_context(|| format!("tensor {name}: bad data_offsets"))?;
            if offs[0] > offs[1] || offs[1] > body.len() {
                bail!("tensor {name}: data_offsets {offs:?} outside the data (truncated file?)");
            }
            let raw = &body[offs[0]..offs[1]];
            let count: usize = shape.iter().product();
            let size = match dtype {
                "F32" => 4,
                "F64" | "I64" => 8,
                "U8" => 1,
                other => bail!("tensor {name}: unsupported dtype {other}"),
            };
            if raw.len() != count * size {
                bail!("tensor {name}: {} bytes for shape {shape:?} of {dtype}", raw.len());
            }
            let data = match dtype {
                "F32" => Data::F32(raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
                "F64" => Data::F64(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
                "I64" => Data::I64(raw.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
                _ => Data::U8(raw.to_vec()),
            };
            out.tensors.insert(name, Tensor { shape, data });
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors.get(name).with_context(|| format!("tensor {name} is missing"))
    }

    /// Serialise (tensors in name order, so the bytes are reproducible).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut header = Map::new();
        if !self.metadata.is_empty() {
            header.insert("__metadata__".into(), serde_json::to_value(&self.metadata).unwrap());
        }
        let mut body = Vec::new();
        for (name, t) in &self.tensors {
            let start = body.len();
            let dtype = match &t.data {
                Data::F32(v) => {
                    v.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
                    "F32"
                }
                Data::F64(v) => {
                    v.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
                    "F64"
                }
                Data::I64(v) => {
                    v.iter().for_each(|x| body.extend_from_slice(&x.to_le_bytes()));
                    "I64"
                }
                Data::U8(v) => {
                    body.extend_from_slice(v);
                    "U8"
                }
            };
            header.insert(name.clone(), serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [start, body.len()]}));
        }
        let h = serde_json::to_vec(&Value::Object(header)).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&body);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut s = SafeTensors::default();
        s.tensors.insert("a".into(), Tensor::f32(vec![2, 2], vec![1.0, 2.0, 3.0, -4.5]));
        s.tensors.insert("b".into(), Tensor { shape: vec![3], data: Data::I64(vec![1, -2, 3]) });
        s.metadata.insert("k".into(), "v".into());
        let bytes = s.to_bytes();
        assert_eq!(SafeTensors::parse(&bytes).unwrap(), s);
        assert!(SafeTensors::parse(&bytes[..bytes.len() - 3]).is_err());
        assert!(SafeTensors::parse(&bytes[..5]).is_err());
    }
}
