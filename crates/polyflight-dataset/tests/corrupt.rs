//! Corrupt files: truncated, with a garbage footer, with garbage messages, random bytes, and
//! thousands of random mutations of good files. Each is an error (never a panic), and the
//! server keeps serving the good files beside them.

mod common;

use common::*;
use futures::TryStreamExt;
use polyflight::proto::FlightDescriptor;
use polyflight::{FlightClient, FlightCode, FlightError};
use polyflight_dataset::DatasetOptions;
use std::path::Path;

/// GetFlightInfo, then every endpoint: the first error, if any.
async fn try_read(client: &FlightClient, name: &str) -> Result<usize, FlightError> {
    let info = client
        .get_flight_info(FlightDescriptor::new_path([name]))
        .await?;
    let batches: Vec<_> = client.read_flight(&info).await?.try_collect().await?;
    Ok(batches.iter().map(|b| b.num_rows()).sum())
}

/// The good file still reads whole.
async fn still_serving(client: &FlightClient) {
    assert_eq!(try_read(client, "good.arrow").await.unwrap(), 3000);
}

fn good_ipc_file(dir: &Path) -> Vec<u8> {
    write_ipc_file(&dir.join("good.arrow"), &sample_batches(3, 1000));
    std::fs::read(dir.join("good.arrow")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = good_ipc_file(root);
    write_ipc_stream(&root.join("good.arrows"), &sample_batches(2, 100));
    let stream = std::fs::read(root.join("good.arrows")).unwrap();
    write_parquet(&root.join("good.parquet"), &sample_batches(2, 100), 100);
    let parquet = std::fs::read(root.join("good.parquet")).unwrap();

    let footer_len = i32::from_le_bytes(good[good.len() - 10..good.len() - 6].try_into().unwrap());
    let footer_start = good.len() - 10 - footer_len as usize;
    let mut garbage_footer = good.clone();
    garbage_footer[footer_start..good.len() - 10].fill(0xab);
    let mut huge_footer_len = good.clone();
    let at = good.len() - 10;
    huge_footer_len[at..at + 4].copy_from_slice(&i32::MAX.to_le_bytes());
    // The first record batch's metadata overwritten (the footer still points at it).
    let mut garbage_message = good.clone();
    let footer = arrow_ipc::root_as_footer(&good[footer_start..good.len() - 10]).unwrap();
    let first_batch = footer.recordBatches().unwrap().get(0).offset() as usize;
    garbage_message[first_batch + 8..first_batch + 64].fill(0x5a);
    let mut garbage_body_length = good.clone();
    garbage_body_length[first_batch..first_batch + 8]
        .copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0x7f]);
    let mut parquet_garbage = parquet.clone();
    let middle = parquet.len() / 2;
    parquet_garbage[middle - 200..middle + 200].fill(0xee);
    let mut parquet_bad_footer = parquet.clone();
    let at = parquet.len() - 8;
    parquet_bad_footer[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.arrow", Vec::new()),
        ("tiny.arrow", b"ARROW1".to_vec()),
        (
            "random.arrow",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ),
        ("truncated.arrow", good[..good.len() - 100].to_vec()),
        ("half.arrow", good[..good.len() / 2].to_vec()),
        ("garbage-footer.arrow", garbage_footer),
        ("huge-footer-length.arrow", huge_footer_len),
        ("garbage-message.arrow", garbage_message),
        ("garbage-body-length.arrow", garbage_body_length),
        (
            "feather-v1.feather",
            b"FEA1\0\0\0\0rest of a feather v1 file FEA1".to_vec(),
        ),
        ("truncated.arrows", stream[..stream.len() - 300].to_vec()),
        (
            "random.arrows",
            (0..3000u32).map(|i| (i * 31 % 256) as u8).collect(),
        ),
        ("empty.parquet", Vec::new()),
        ("truncated.parquet", parquet[..parquet.len() - 50].to_vec()),
        ("garbage.parquet", parquet_garbage),
        ("bad-footer.parquet", parquet_bad_footer),
        (
            "random.parquet",
            [&b"PAR1"[..], &[7u8; 3000], b"\x10\0\0\0PAR1"].concat(),
        ),
    ];
    for (name, bytes) in &cases {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let (server, client) = serve(root, DatasetOptions::default(), "grpc://127.0.0.1:0").await;
    for (name, _) in &cases {
        let err = try_read(&client, name)
            .await
            .expect_err(&format!("{name} must not read"));
        assert!(
            matches!(
                err.code(),
                FlightCode::Internal | FlightCode::InvalidArgument | FlightCode::Unimplemented
            ),
            "{name}: {err}"
        );
        assert!(
            err.message().contains(name),
            "{name}: the error names the file: {err}"
        );
        still_serving(&client).await;
    }
    // Listing skips the files whose metadata it cannot read (garbage in a Parquet file's data
    // pages shows only when they are decoded).
    let listed = listed(&client).await;
    assert_eq!(
        listed,
        [
            vec!["garbage.parquet"],
            vec!["good.arrow"],
            vec!["good.arrows"],
            vec!["good.parquet"]
        ]
    );
    server.shutdown().await.unwrap();
}

/// A small deterministic generator (xorshift) for the mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random byte changes anywhere in good IPC files and streams and Parquet files: whatever the
/// service makes of each, it answers, and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_files_never_break_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let good = good_ipc_file(root);
    let small = sample_batches(2, 50);
    write_ipc_file(&root.join("small.arrow"), &small);
    write_ipc_stream(&root.join("small.arrows"), &small);
    write_parquet(&root.join("small.parquet"), &small, 50);
    let originals: Vec<(&str, Vec<u8>)> = ["small.arrow", "small.arrows", "small.parquet"]
        .into_iter()
        .map(|name| (name, std::fs::read(root.join(name)).unwrap()))
        .collect();
    assert!(!good.is_empty());
    let (server, client) = serve(root, DatasetOptions::default(), "grpc://127.0.0.1:0").await;

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut served, mut refused) = (0, 0);
    for round in 0..300 {
        let (name, original) = &originals[round % originals.len()];
        let mut bytes = original.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        if rng.below(8) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        }
        let (stem, extension) = name.split_once('.').unwrap();
        let mutated = format!("m{round}-{stem}.{extension}");
        std::fs::write(root.join(&mutated), &bytes).unwrap();
        match try_read(&client, &mutated).await {
            Ok(_) => served += 1,
            Err(_) => refused += 1,
        }
        std::fs::remove_file(root.join(&mutated)).unwrap();
    }
    eprintln!("mutations: {served} still read, {refused} refused");
    assert!(refused > 0);
    still_serving(&client).await;
    server.shutdown().await.unwrap();
}
