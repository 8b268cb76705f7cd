//! Bulk load: a generated AccuNode annual CSV uploaded as a bulk job, timed from the start of the upload to
//! the job's completion (every row scored and committed).

use std::{path::Path, time::Instant};

use anyhow::Context;
use pdscore_actors::PredictionType;

use super::{Record, cpu::CpuMeter};
use crate::client::{Submission, sample, submit};

pub struct BulkLoad<'a> {
    pub url: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub rows: u64,
    /// Where the generated file is written (and left, for a second run).
    pub file: &'a Path,
    pub record: Option<&'a Path>,
}

pub async fn run(load: BulkLoad<'_>) -> anyhow::Result<Record> {
    if !load.file.exists() {
        sample(load.file, PredictionType::Annual, load.rows, 10, "S")?;
    }
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let job = submit(Submission {
        url: load.url,
        email: load.email,
        password: load.password,
        file: load.file,
        prediction_type: PredictionType::Annual,
        organization_id: None,
        model: None,
        wait: true,
    })
    .await?;
    let elapsed = started.elapsed();
    let cpu = cpu.stop();
    let succeeded = job["succeeded_rows"].as_u64().context("no succeeded_rows in the job")?;
    let mut record = Record::throughput_only("bulk", succeeded, elapsed);
    record.failed = job["failed_rows"].as_u64().unwrap_or(0);
    let record = record.with_cpu(cpu);
    println!("{}", Record::HEADER);
    record.emit(load.record)?;
    Ok(record)
}
