//! Image-folder datasets: `train/<class>/<name>.{jpg,jpeg,png}` and
//! `test/<class>/…`, as a folder or a `.tar.gz` (any leading folders in the
//! archive are ignored). Images must be 32×32 RGB. Within a split, images are
//! ordered by class (label order) then file name, so decoding is reproducible.

use super::{Split, CLASSES, IMAGE_BYTES, SIDE};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;

/// (split, class index, file name) of an archive or folder path like
/// `…/train/cat/0001.jpg`; `None` for anything else.
pub fn split_class_of(path: &str) -> Option<(bool, usize, String)> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.len() < 3 {
        return None;
    }
    let (split, class, file) = (parts[parts.len() - 3], parts[parts.len() - 2], parts[parts.len() - 1]);
    let train = match split {
        "train" => true,
        "test" => false,
        _ => return None,
    };
    let lower = file.to_ascii_lowercase();
    if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg") || lower.ends_with(".png")) {
        return None;
    }
    let class = CLASSES.iter().position(|c| *c == class)?;
    Some((train, class, file.to_string()))
}

pub fn list_tar_gz(path: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut names = Vec::new();
    for e in ar.entries().with_context(|| format!("{}: not a readable .tar.gz", path.display()))? {
        let e = e.with_context(|| format!("{}: corrupt or truncated archive", path.display()))?;
        names.push(e.path()?.to_string_lossy().into_owned());
    }
    Ok(names)
}

struct Item {
    train: bool,
    class: usize,
    name: String,
    /// Where it came from, for error messages.
    origin: String,
    bytes: Vec<u8>,
}

pub fn read(path: &Path) -> Result<(Split, Split)> {
    let mut items = Vec::new();
    if path.is_dir() {
        for (split, train) in [("train", true), ("test", false)] {
            for (class, cname) in CLASSES.iter().enumerate() {
                let dir = path.join(split).join(cname);
                if !dir.is_dir() {
                    continue; // reported below as a missing class
                }
                for e in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
                    let p = e?.path();
                    let rel = format!("{split}/{cname}/{}", p.file_name().unwrap().to_string_lossy());
                    if let Some((_, _, name)) = split_class_of(&rel) {
                        let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
                        items.push(Item { train, class, name, origin: p.display().to_string(), bytes });
                    }
                }
            }
        }
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
        for e in ar.entries().with_context(|| format!("{}: not a readable .tar.gz", path.display()))? {
            let mut e = e.with_context(|| format!("{}: corrupt or truncated archive", path.display()))?;
            let entry = e.path()?.to_string_lossy().into_owned();
            if let Some((train, class, name)) = split_class_of(&entry) {
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).with_context(|| format!("{}: corrupt or truncated archive (while reading {entry})", path.display()))?;
                items.push(Item { train, class, name, origin: format!("{}:{entry}", path.display()), bytes });
            }
        }
    }
    for (split, train) in [("train", true), ("test", false)] {
        for (class, cname) in CLASSES.iter().enumerate() {
            if !items.iter().any(|it| it.train == train && it.class == class) {
                bail!("{}: no images for class '{cname}' in {split}/ (expected {split}/{cname}/*.jpg or *.png)", path.display());
            }
        }
    }
    items.sort_by(|a, b| (!a.train, a.class, &a.name).cmp(&(!b.train, b.class, &b.name)));
    let pixels: Vec<Vec<u8>> = items.par_iter().map(|it| decode_image(&it.bytes).with_context(|| it.origin.clone())).collect::<Result<_>>()?;
    let (mut train, mut test) = (Split::default(), Split::default());
    for (it, px) in items.iter().zip(pixels) {
        let s = if it.train { &mut train } else { &mut test };
        s.images.extend_from_slice(&px);
        s.labels.push(it.class as u8);
    }
    Ok((train, test))
}

/// Decode one JPEG or PNG into 32×32×3 bytes.
fn decode_image(bytes: &[u8]) -> Result<Vec<u8>> {
    let (w, h, channels, px) = if bytes.starts_with(&[0xFF, 0xD8]) {
        use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};
        let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB));
        let px = d.decode().map_err(|e| anyhow::anyhow!("not a decodable JPEG: {e:?}"))?;
        let info = d.info().context("JPEG without a header")?;
        let comps = d.input_colorspace().map(|c| c.num_components()).unwrap_or(3);
        if comps != 3 {
            bail!("image is not RGB ({comps} colour components); CIFAR-10 images are 32x32 RGB");
        }
        (info.width as usize, info.height as usize, 3, px)
    } else if bytes.starts_with(b"\x89PNG") {
        let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
        d.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut r = d.read_info().map_err(|e| anyhow::anyhow!("not a decodable PNG: {e}"))?;
        let mut px = vec![0; r.output_buffer_size().context("PNG too large")?];
        let info = r.next_frame(&mut px).map_err(|e| anyhow::anyhow!("not a decodable PNG: {e}"))?;
        let channels = match info.color_type {
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            other => bail!("image is {other:?}, not RGB; CIFAR-10 images are 32x32 RGB"),
        };
        px.truncate(info.buffer_size());
        (info.width as usize, info.height as usize, channels, px)
    } else {
        bail!("not a JPEG or PNG file");
    };
    if w != SIDE || h != SIDE {
        bail!("image is {w}x{h}; CIFAR-10 images are 32x32 RGB");
    }
    let rgb: Vec<u8> = px.chunks(channels).flat_map(|p| [p[0], p[1], p[2]]).collect();
    if rgb.len() != IMAGE_BYTES {
        bail!("decoded {} bytes, expected {IMAGE_BYTES}", rgb.len());
    }
    Ok(rgb)
}
