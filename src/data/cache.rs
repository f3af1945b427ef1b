//! The decoded cache: `cifar10.cache` (raw tensors) and `cifar10.json` (its
//! manifest). Both are written atomically, the tensors first, so a crash
//! leaves either the old cache or the new one, never half of one.

use super::{SourceKind, Split, Dataset, IMAGE_BYTES, JPEG_Q75_SHA256, OFFICIAL_BINARY_MD5};
use crate::io::{sha256_file, sha256_hex, write_atomic};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"ACTLABC1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// How results from this data are labelled, e.g. "CIFAR-10 (JPEG q75)".
    pub dataset: String,
    pub source: String,
    pub source_kind: SourceKind,
    /// sha256 of the source archive (or of a folder's files, in path order).
    pub source_sha256: String,
    /// Size and modification time of the source, to notice a changed source cheaply.
    pub source_fingerprint: String,
    pub train_images: usize,
    pub test_images: usize,
    /// sha256 of the decoded tensors (the cache file's payload).
    pub tensors_sha256: String,
}

pub fn cache_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join("cifar10.cache"), data_dir.join("cifar10.json"))
}

pub fn read_manifest(data_dir: &Path) -> Result<Option<Manifest>> {
    let (_, mpath) = cache_paths(data_dir);
    if !mpath.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&mpath).with_context(|| format!("cannot read {}", mpath.display()))?;
    match serde_json::from_str(&text) {
        Ok(m) => Ok(Some(m)),
        // An unreadable manifest is treated as no cache: the import redoes it.
        Err(_) => Ok(None),
    }
}

/// Size and mtime of a file, or of every file under a folder.
pub fn fingerprint(source: &Path) -> Result<String> {
    let canonical = source.canonicalize().with_context(|| format!("dataset source {} does not exist", source.display()))?;
    let mut h = Sha256::new();
    h.update(canonical.to_string_lossy().as_bytes());
    for p in files_under(&canonical)? {
        let m = std::fs::metadata(&p)?;
        let mtime = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
        h.update(format!("{}\0{}\0{}\n", p.display(), m.len(), mtime).as_bytes());
    }
    Ok(crate::io::hex(&h.finalize()))
}

fn files_under(p: &Path) -> Result<Vec<PathBuf>> {
    if p.is_file() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let path = e?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// sha256 of an archive, or of a folder's files (relative path and bytes, in path order).
pub fn source_sha256(source: &Path) -> Result<String> {
    if source.is_file() {
        return sha256_file(source);
    }
    let mut h = Sha256::new();
    for p in files_under(source)? {
        h.update(p.strip_prefix(source).unwrap_or(&p).to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?);
    }
    Ok(crate::io::hex(&h.finalize()))
}

fn payload(train: &Split, test: &Split) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + train.images.len() + test.images.len() + train.len() + test.len());
    out.extend_from_slice(&(train.len() as u64).to_le_bytes());
    out.extend_from_slice(&(test.len() as u64).to_le_bytes());
    for s in [train, test] {
        out.extend_from_slice(&s.labels);
        out.extend_from_slice(&s.images);
    }
    out
}

/// How results from a source are labelled. Only the official archive,
/// recognised by the md5 its page publishes, is plain "CIFAR-10"; anything
/// else in its layout (an extracted folder included, which has no published
/// checksum) is "of unknown source".
fn dataset_label(kind: SourceKind, source_sha256: &str, source: &Path) -> Result<String> {
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(match kind {
        SourceKind::OfficialBinary if source.is_file() && md5_file(source)? == OFFICIAL_BINARY_MD5 => "CIFAR-10".into(),
        SourceKind::OfficialBinary => format!("CIFAR-10 layout, unknown source ({name})"),
        SourceKind::ImageFolder if source_sha256 == JPEG_Q75_SHA256 => "CIFAR-10 (JPEG q75)".into(),
        SourceKind::ImageFolder => format!("CIFAR-10 (image folder {name})"),
    })
}

/// md5 of a file, streamed.
fn md5_file(path: &Path) -> Result<String> {
    use md5::Digest;
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(crate::io::hex(&h.finalize()))
}

pub fn write(data_dir: &Path, source: &Path, kind: SourceKind, source_fingerprint: String, source_sha256: String, train: &Split, test: &Split) -> Result<Manifest> {
    let (cpath, mpath) = cache_paths(data_dir);
    let body = payload(train, test);
    let tensors_sha256 = sha256_hex(&body);
    let mut file = MAGIC.to_vec();
    file.extend_from_slice(&body);
    write_atomic(&cpath, &file)?;
    let manifest = Manifest {
        dataset: dataset_label(kind, &source_sha256, source)?,
        source: source.display().to_string(),
        source_kind: kind,
        source_sha256,
        source_fingerprint,
        train_images: train.len(),
        test_images: test.len(),
        tensors_sha256,
    };
    write_atomic(&mpath, serde_json::to_string_pretty(&manifest)?.as_bytes())?;
    Ok(manifest)
}

/// Read the cache and check it against its manifest.
pub fn read(data_dir: &Path, m: &Manifest) -> Result<Dataset> {
    let (cpath, _) = cache_paths(data_dir);
    let file = std::fs::read(&cpath).with_context(|| format!("cannot read the dataset cache {}; run `actlab data --force` to rebuild it", cpath.display()))?;
    let fix = format!("run `actlab data --force` to rebuild {}", cpath.display());
    if !file.starts_with(MAGIC) || file.len() < 24 {
        bail!("{} is not an actlab dataset cache; {fix}", cpath.display());
    }
    let body = &file[8..];
    if sha256_hex(body) != m.tensors_sha256 {
        bail!("{} does not match the sha256 in its manifest (corrupt?); {fix}", cpath.display());
    }
    let ntrain = u64::from_le_bytes(body[0..8].try_into().unwrap()) as usize;
    let ntest = u64::from_le_bytes(body[8..16].try_into().unwrap()) as usize;
    let mut rest = &body[16..];
    let mut take = |n: usize| -> Result<Split> {
        let need = n * (1 + IMAGE_BYTES);
        if rest.len() < need {
            bail!("{} is truncated; {fix}", cpath.display());
        }
        let labels = rest[..n].to_vec();
        let images = rest[n..need].to_vec();
        rest = &rest[need..];
        Ok(Split { images, labels })
    };
    let train = take(ntrain)?;
    let test = take(ntest)?;
    Ok(Dataset { train, test, manifest: m.clone() })
}
