//! CIFAR-10: where it comes from, how it is decoded, and the decoded cache.
//!
//! Two kinds of source are read:
//! - the official `cifar-10-binary.tar.gz` or its extracted `cifar-10-batches-bin/`;
//! - an image-folder dataset (`train/<class>/*.jpg|png`, `test/<class>/…`),
//!   as a folder or a `.tar.gz`, like the JPEG re-encoding this project ships with.
//!
//! Either is decoded once into `data/cifar10.cache` (u8 NHWC pixels and labels)
//! with `data/cifar10.json` recording the source, its sha256 and the sha256
//! of the decoded tensors; later runs read the cache.

mod cache;
mod cifar_binary;
mod image_folder;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use cache::{cache_paths, read_manifest, Manifest};

/// CIFAR-10's classes in label order.
pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];
pub const SIDE: usize = 32;
pub const IMAGE_BYTES: usize = SIDE * SIDE * 3;

/// sha256 of `cifar10-jpeg.tar.gz`, the JPEG (quality 75) re-encoding of
/// CIFAR-10 that this project's machines carry; results from it are labelled so.
pub const JPEG_Q75_SHA256: &str = "5bbd2193f3b9982b20b3e62de1fcb9691706d5884e1bfe2840596f4c5f9b9bec";

/// sha256 of the tensors decoded from that archive: the data of every
/// committed run, which keeps the plain folder layout (`store.rs`).
pub const JPEG_Q75_TENSORS_SHA256: &str = "658d218d754ff5d2c0d5244cd02a90aad93531c3bf723d7b65e122629c890829";

/// md5 of the official `cifar-10-binary.tar.gz`, as its page publishes it:
/// the only source labelled plain "CIFAR-10".
pub const OFFICIAL_BINARY_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// Where the official archive is published, for error messages.
const OFFICIAL_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/// One split: images as u8 NHWC (32×32×3 each) and labels 0..9.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Split {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }
    /// The first `n` images (or all).
    pub fn truncated(&self, n: Option<usize>) -> Split {
        let n = n.unwrap_or(self.len()).min(self.len());
        Split { images: self.images[..n * IMAGE_BYTES].to_vec(), labels: self.labels[..n].to_vec() }
    }
}

#[derive(Clone, Debug)]
pub struct Dataset {
    pub train: Split,
    pub test: Split,
    pub manifest: Manifest,
}

/// What kind of source a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// `cifar-10-binary.tar.gz` or `cifar-10-batches-bin/`.
    OfficialBinary,
    /// `train/<class>/*`, `test/<class>/*` as a folder or `.tar.gz`.
    ImageFolder,
}

/// Decide what `path` holds by looking at it.
fn detect(path: &Path) -> Result<SourceKind> {
    if !path.exists() {
        bail!("dataset source {} does not exist", path.display());
    }
    if path.is_dir() {
        if cifar_binary::find_batches_dir(path).is_some() {
            return Ok(SourceKind::OfficialBinary);
        }
        if path.join("train").is_dir() && path.join("test").is_dir() {
            return Ok(SourceKind::ImageFolder);
        }
        bail!(
            "{} is neither the official CIFAR-10 layout (cifar-10-batches-bin/data_batch_1.bin …) \
             nor an image folder (train/<class>/…, test/<class>/…)",
            path.display()
        );
    }
    // An archive: list its entries to tell the two apart.
    let names = image_folder::list_tar_gz(path)?;
    if names.iter().any(|n| n.ends_with("data_batch_1.bin")) {
        Ok(SourceKind::OfficialBinary)
    } else if names.iter().any(|n| image_folder::split_class_of(n).is_some()) {
        Ok(SourceKind::ImageFolder)
    } else {
        bail!(
            "{}: the archive holds neither cifar-10-batches-bin/*.bin nor train/<class>/ and test/<class>/ images",
            path.display()
        )
    }
}

/// The source to import when none is given: an archive or folder in
/// `data_dir`, then the shared JPEG archive beside the checkout. (The CLI
/// reads `ACTLAB_DATA` as a named source; the library reads no environment.)
fn default_source(data_dir: &Path) -> Result<PathBuf> {
    let candidates = [
        data_dir.join("cifar-10-binary.tar.gz"),
        data_dir.join("cifar-10-batches-bin"),
        data_dir.join("cifar10-jpeg.tar.gz"),
        data_dir.join("cifar10-jpeg"),
        PathBuf::from("../shared/datasets/cifar10-jpeg.tar.gz"),
    ];
    if let Some(p) = candidates.iter().find(|p| p.exists()) {
        return Ok(p.clone());
    }
    bail!(
        "no CIFAR-10 source found.\n  Download the official archive from {OFFICIAL_URL}\n  \
         and either put it at {} or point actlab at it:\n    actlab data --data /path/to/cifar-10-binary.tar.gz\n    \
         (or set ACTLAB_DATA=/path/to/cifar-10-binary.tar.gz)\n  \
         An image folder (train/<class>/*.png, test/<class>/*.png) or its .tar.gz works too.",
        data_dir.join("cifar-10-binary.tar.gz").display()
    )
}

/// Decode a source into train and test splits.
pub fn decode(path: &Path) -> Result<(Split, Split, SourceKind)> {
    let kind = detect(path)?;
    let (train, test) = match kind {
        SourceKind::OfficialBinary => cifar_binary::read(path)?,
        SourceKind::ImageFolder => image_folder::read(path)?,
    };
    Ok((train, test, kind))
}

/// The dataset from the cache in `data_dir`, importing `source` first when
/// the cache is missing, stale (another source) or `force` is set.
pub fn load(data_dir: &Path, source: Option<&Path>, force: bool, progress: bool) -> Result<Dataset> {
    let source = match source {
        Some(p) => p.to_path_buf(),
        None => match cache::read_manifest(data_dir)? {
            // With no source named, an existing cache is what the user means.
            Some(m) if !force => return cache::read(data_dir, &m),
            _ => default_source(data_dir)?,
        },
    };
    let fingerprint = cache::fingerprint(&source)?;
    if !force
        && let Some(m) = cache::read_manifest(data_dir)?
        && m.source_fingerprint == fingerprint
    {
        return cache::read(data_dir, &m);
    }
    if progress {
        eprintln!("importing CIFAR-10 from {} into {}", source.display(), data_dir.display());
    }
    let (train, test, kind) = decode(&source)?;
    let source_sha256 = cache::source_sha256(&source)?;
    let manifest = cache::write(data_dir, &source, kind, fingerprint, source_sha256, &train, &test)?;
    Ok(Dataset { train, test, manifest })
}
