//! The official CIFAR-10 binary format: `data_batch_1..5.bin` and
//! `test_batch.bin`, 10,000 records each of one label byte and 3,072 pixel
//! bytes (1,024 red, 1,024 green, 1,024 blue, row-major).

use super::{Split, IMAGE_BYTES};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

const RECORD: usize = 1 + IMAGE_BYTES;
const TRAIN_FILES: [&str; 5] = ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
const TEST_FILE: &str = "test_batch.bin";

/// The folder holding the batches: `dir` itself or `dir/cifar-10-batches-bin`.
pub fn find_batches_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")].into_iter().find(|d| d.join(TRAIN_FILES[0]).is_file())
}

pub fn read(path: &Path) -> Result<(Split, Split)> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if path.is_dir() {
        let dir = find_batches_dir(path).context("no data_batch_1.bin")?;
        for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
            let p = dir.join(name);
            if p.exists() {
                files.insert(name.to_string(), std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?);
            }
        }
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        let entries = ar.entries().with_context(|| format!("{}: not a readable .tar.gz", path.display()))?;
        for e in entries {
            let mut e = e.with_context(|| format!("{}: corrupt or truncated archive", path.display()))?;
            let name = e.path()?.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if TRAIN_FILES.contains(&name.as_str()) || name == TEST_FILE {
                let mut buf = Vec::new();
                e.read_to_end(&mut buf).with_context(|| format!("{}: corrupt or truncated archive (while reading {name})", path.display()))?;
                files.insert(name, buf);
            }
        }
    }
    let mut train = Split::default();
    for name in TRAIN_FILES {
        append(&mut train, &files, name, path)?;
    }
    let mut test = Split::default();
    append(&mut test, &files, TEST_FILE, path)?;
    Ok((train, test))
}

fn append(split: &mut Split, files: &BTreeMap<String, Vec<u8>>, name: &str, source: &Path) -> Result<()> {
    let bytes = files.get(name).with_context(|| format!("{}: {name} is missing", source.display()))?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        bail!("{}: {name} has {} bytes, not a whole number of {RECORD}-byte records (truncated?)", source.display(), bytes.len());
    }
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0];
        if label > 9 {
            bail!("{}: {name} record {i} has label {label}; CIFAR-10 labels are 0..9", source.display());
        }
        split.labels.push(label);
        // Planes (R, G, B) of 1,024 bytes → interleaved HWC.
        let planes = &rec[1..];
        for p in 0..1024 {
            split.images.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
        }
    }
    Ok(())
}
