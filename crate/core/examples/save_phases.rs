//! Where a zip save's time goes, phase by phase (see `writer/file_write.rs` for the findings):
//!
//! ```sh
//! cargo run --release -p torchsave-core --example save_phases -- IN.pt OUT.pt [MODE] [RUNS]
//! ```
//!
//! Loads `IN.pt` eagerly, then per run: removes `OUT.pt`, runs `sync` (no run pays for an
//! earlier one's writeback) and saves, printing pickle / CRC / write / fsync times (`NOSYNC=1`:
//! no fsync). MODE: `stream` (CRC-32 of everything first, then one sequential buffered stream
//! with a whole tensor per `write`), `chunkN` (the same with writes of at most N KiB),
//! `buffered` or `direct` (`file_write` with that mode: CRCs alongside the writes), and
//! `durable` / `fast` (the whole `save_to_path` with `durable` true / false). Linux only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;
use torchsave_core::writer::{file_write, pickler, zip_write};
use torchsave_core::{load_file, save_to_path, LoadOptions, SaveOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: save_phases IN.pt OUT.pt [stream|buffered|direct|durable|fast] [RUNS]");
        std::process::exit(2);
    }
    let (src, out) = (Path::new(&args[1]), Path::new(&args[2]));
    let mode = args.get(3).map(String::as_str).unwrap_or("buffered");
    let runs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(1);
    let opts = LoadOptions {
        mmap: false,
        ..Default::default()
    };
    let g = load_file(src, &opts).unwrap().graph;
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    for _ in 0..runs {
        let _ = std::fs::remove_file(out);
        std::process::Command::new("sync").status().unwrap();
        if mode == "durable" || mode == "fast" {
            let t0 = Instant::now();
            let o = SaveOptions {
                durable: mode == "durable",
                ..Default::default()
            };
            save_to_path(&g, out, &o).unwrap();
            println!("{mode}: total {:.1} ms", ms(t0, Instant::now()));
            continue;
        }
        let t0 = Instant::now();
        let p = pickler::pickle_graph(&g, 2, pickler::PidStyle::Zip).unwrap();
        let mut recs = vec![zip_write::RecordSource {
            name: "data.pkl".into(),
            data: &p.bytes,
        }];
        for s in &p.storages {
            recs.push(zip_write::RecordSource {
                name: format!("data/{}", s.key),
                data: g.storages[s.storage].data.as_slice(),
            });
        }
        let t1 = Instant::now();
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(out)
            .unwrap();
        let mut t2 = t1;
        let sync = match mode {
            "stream" => {
                let (plan, sid) = zip_write::plan("archive", &recs, 64).unwrap();
                t2 = Instant::now();
                let mut w = std::io::BufWriter::with_capacity(1 << 20, &f);
                zip_write::write_stream(&plan, &recs, &sid, &mut w).unwrap();
                w.flush().unwrap();
                true
            }
            m if m.starts_with("chunk") => {
                // CRCs first, then write() calls of at most N KiB (`chunk64`: 64 KiB).
                let kib: usize = m.trim_start_matches("chunk").parse().unwrap();
                let (plan, sid) = zip_write::plan("archive", &recs, 64).unwrap();
                t2 = Instant::now();
                let mut w = Chunked(&f, kib << 10);
                zip_write::write_stream(&plan, &recs, &sid, &mut w).unwrap();
                true
            }
            "buffered" | "direct" => {
                let m = if mode == "direct" {
                    file_write::Mode::Direct
                } else {
                    file_write::Mode::Buffered
                };
                let used = file_write::write_file("archive", &recs, 64, &f, |_| m).unwrap();
                assert_eq!(used, m, "the file system refused direct I/O");
                true
            }
            other => panic!("unknown mode {other}"),
        };
        let t3 = Instant::now();
        if sync && std::env::var("NOSYNC").is_err() {
            f.sync_all().unwrap();
        }
        let t4 = Instant::now();
        println!(
            "{mode}: pickle {:.1} ms, crc-first {:.1} ms, write {:.1} ms, fsync {:.1} ms, total {:.1} ms",
            ms(t0, t1),
            ms(t1, t2),
            ms(t2, t3),
            ms(t3, t4),
            ms(t0, t4)
        );
    }
    let _ = std::fs::remove_file(out);
}

/// A writer that hands the file at most `.1` bytes per write() call.
struct Chunked<'a>(&'a std::fs::File, usize);

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        (&*self.0).write(&buf[..n])
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
