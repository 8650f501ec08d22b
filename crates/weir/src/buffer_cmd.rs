//! `weir buffer verify|inspect|repair DIR`: for operators, a sink's disk
//! buffer (`DATA_DIR/buffers/SINK`).

use std::path::PathBuf;

use clap::Subcommand;
use weir_agent::buffer::disk::{self, DiskBuffer, DiskConfig};

#[derive(Debug, Subcommand)]
pub enum BufferCommand {
    /// Check every record; exit 1 if anything is damaged. Changes nothing.
    Verify { dir: PathBuf },
    /// List the segments, their records and the acknowledgement mark (JSON).
    Inspect { dir: PathBuf },
    /// Cut damaged tails and set damaged segments aside, as the agent does
    /// when it starts. The agent must not be running.
    Repair { dir: PathBuf },
}

pub fn run(command: BufferCommand) -> i32 {
    let max_record = DiskConfig::default().max_record;
    match command {
        BufferCommand::Verify { dir } => match disk::inspect(&dir, max_record) {
            Ok(found) => {
                let damaged: Vec<_> = found
                    .segments
                    .iter()
                    .filter(|s| s.damage.is_some())
                    .collect();
                let records: u64 = found.segments.iter().map(|s| s.records).sum();
                for segment in &damaged {
                    let (at, why) = segment.damage.as_ref().expect("filtered");
                    println!("{}: damaged at offset {at}: {why}", segment.path.display());
                }
                println!(
                    "{}: {} segments, {records} records, {} damaged, acknowledged below {}",
                    dir.display(),
                    found.segments.len(),
                    damaged.len(),
                    found.mark.map_or("(no mark)".to_owned(), |m| m.to_string())
                );
                i32::from(!damaged.is_empty())
            }
            Err(e) => {
                eprintln!("weir: {}: {e}", dir.display());
                2
            }
        },
        BufferCommand::Inspect { dir } => match disk::inspect(&dir, max_record) {
            Ok(found) => match serde_json::to_string_pretty(&found) {
                Ok(text) => {
                    println!("{text}");
                    0
                }
                Err(e) => {
                    eprintln!("weir: {e}");
                    2
                }
            },
            Err(e) => {
                eprintln!("weir: {}: {e}", dir.display());
                2
            }
        },
        BufferCommand::Repair { dir } => {
            if !dir.is_dir() {
                eprintln!("weir: {} is not a buffer directory", dir.display());
                return 2;
            }
            match DiskBuffer::open(&dir, DiskConfig::default()) {
                Ok((buffer, recovery)) => {
                    for cut in &recovery.cuts {
                        println!(
                            "cut {} bytes from {} at offset {}: {}",
                            cut.bytes,
                            cut.path.display(),
                            cut.offset,
                            cut.reason
                        );
                    }
                    println!(
                        "{}: repaired; {} records wait for delivery",
                        dir.display(),
                        recovery.pending.records
                    );
                    let _ = buffer.close();
                    0
                }
                Err(e) => {
                    eprintln!("weir: {e}");
                    2
                }
            }
        }
    }
}
