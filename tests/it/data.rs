//! Every source format decodes to the same pixels; bad input gives errors
//! that name the file; the cache is reused, verified and never half-written.

use crate::common;
use actlab::data::{self, SourceKind, CLASSES, IMAGE_BYTES};
use common::*;

fn err_text(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn official_binary_as_folder_and_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (root, train, test) = write_official_dir(&src, 7, 9);
    let (tr, te, kind) = data::decode(&root).unwrap();
    assert_eq!(kind, SourceKind::OfficialBinary);
    assert_eq!((tr.clone(), te.clone()), (train.clone(), test.clone()));
    let archive = tmp.path().join("cifar-10-binary.tar.gz");
    tar_gz(&src, &archive);
    let (tr2, te2, kind2) = data::decode(&archive).unwrap();
    assert_eq!(kind2, SourceKind::OfficialBinary);
    assert_eq!((tr2, te2), (train, test));
}

#[test]
fn png_folder_and_archive_decode_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("imgs");
    let (train, test) = write_image_folder(&src, 2, false);
    let (tr, te, kind) = data::decode(&src).unwrap();
    assert_eq!(kind, SourceKind::ImageFolder);
    assert_eq!((&tr, &te), (&train, &test));
    let archive = tmp.path().join("imgs.tar.gz");
    tar_gz(&src, &archive);
    let (tr2, te2, _) = data::decode(&archive).unwrap();
    assert_eq!((tr2, te2), (train, test));
}

#[test]
fn jpeg_folder_decodes_close_to_the_original() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, _) = write_image_folder(tmp.path(), 1, true);
    let (tr, te, _) = data::decode(tmp.path()).unwrap();
    assert_eq!(tr.labels, train.labels);
    assert_eq!(te.len(), 10);
    // Flat-ish content survives JPEG; noise does not, so compare means per image.
    for i in 0..tr.len() {
        let m = |v: &[u8]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!((m(tr.image(i)) - m(train.image(i))).abs() < 8.0);
    }
}

#[test]
fn truncated_archive_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_official_dir(&src, 5, 5);
    let archive = tmp.path().join("cut.tar.gz");
    tar_gz(&src, &archive);
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_text(data::decode(&archive));
    assert!(e.contains("cut.tar.gz"), "{e}");
}

#[test]
fn bad_records_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, _, _) = write_official_dir(tmp.path(), 3, 3);
    let f = root.join("cifar-10-batches-bin/data_batch_2.bin");
    let mut b = std::fs::read(&f).unwrap();
    b.truncate(b.len() - 10);
    std::fs::write(&f, &b).unwrap();
    let e = err_text(data::decode(&root));
    assert!(e.contains("data_batch_2.bin") && e.contains("truncated"), "{e}");

    let (root, _, _) = write_official_dir(&tmp.path().join("b"), 3, 3);
    let f = root.join("cifar-10-batches-bin/test_batch.bin");
    let mut b = std::fs::read(&f).unwrap();
    b[3073] = 10;
    std::fs::write(&f, &b).unwrap();
    let e = err_text(data::decode(&root));
    assert!(e.contains("test_batch.bin") && e.contains("label 10"), "{e}");

    let (root, _, _) = write_official_dir(&tmp.path().join("c"), 3, 3);
    std::fs::remove_file(root.join("cifar-10-batches-bin/data_batch_4.bin")).unwrap();
    let e = err_text(data::decode(&root));
    assert!(e.contains("data_batch_4.bin is missing"), "{e}");
}

#[test]
fn image_folder_errors_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(tmp.path(), 1, false);
    std::fs::remove_dir_all(tmp.path().join("test/ship")).unwrap();
    let e = err_text(data::decode(tmp.path()));
    assert!(e.contains("'ship'") && e.contains("test/"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(tmp.path(), 1, false);
    let bad = tmp.path().join("train/cat/0000.png");
    std::fs::write(&bad, png_bytes(&vec![7u8; 16 * 16 * 3], 16, 16)).unwrap();
    let e = err_text(data::decode(tmp.path()));
    assert!(e.contains("train/cat/0000.png") && e.contains("16x16"), "{e}");

    let tmp = tempfile::tempdir().unwrap();
    write_image_folder(tmp.path(), 1, false);
    let bad = tmp.path().join("test/dog/0000.png");
    std::fs::write(&bad, b"not an image at all").unwrap();
    let e = err_text(data::decode(tmp.path()));
    assert!(e.contains("test/dog/0000.png"), "{e}");
}

#[test]
fn cache_is_reused_verified_and_atomic() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, train, _) = write_official_dir(&tmp.path().join("src"), 4, 4);
    let cache = tmp.path().join("data");
    let a = data::load(&cache, Some(&root), false, false).unwrap();
    assert_eq!(a.train, train);
    // The official layout, but not the official archive (its md5): labelled so.
    assert_eq!(a.manifest.dataset, "CIFAR-10 layout, unknown source (src)");
    assert_eq!(a.manifest.train_images, 20);
    // Only the cache and its manifest: no temporary files left behind.
    let mut names: Vec<String> = std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["cifar10.cache", "cifar10.json"]);
    // With no source named, the cache is used (the source may be gone).
    std::fs::remove_dir_all(&root).unwrap();
    let b = data::load(&cache, None, false, false).unwrap();
    assert_eq!(b.train, a.train);
    assert_eq!(b.manifest, a.manifest);
    // A corrupted cache is detected and the fix is named.
    let cpath = data::cache_paths(&cache).0;
    let mut bytes = std::fs::read(&cpath).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cpath, bytes).unwrap();
    let e = err_text(data::load(&cache, None, false, false));
    assert!(e.contains("actlab data --force"), "{e}");
    assert_eq!(IMAGE_BYTES, 3072);
    assert_eq!(CLASSES.len(), 10);
}

#[test]
fn missing_source_says_where_to_download() {
    let tmp = tempfile::tempdir().unwrap();
    let out = actlab(&["data"], tmp.path());
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("cifar-10-binary.tar.gz") && e.contains("https://") && e.contains("--data"), "{e}");
}
