//! The terminal side of bulk jobs: submit a file to a running service and follow it with a progress bar
//! (`pdscore-load submit`), and write sample files in AccuNode's format (`pdscore-load sample`).

use std::{io::Write, path::Path, time::Duration};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use pdscore_actors::PredictionType;
use pdscore_models::features::{ACCUNODE_ANNUAL, ACCUNODE_QUARTERLY};
use serde_json::Value;

/// What `submit` needs to reach the service.
pub struct Submission<'a> {
    pub url: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub file: &'a Path,
    pub prediction_type: PredictionType,
    pub organization_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub wait: bool,
}

fn data(answer: Value, what: &str) -> anyhow::Result<Value> {
    if answer["success"] == Value::Bool(true) {
        return Ok(answer["data"].clone());
    }
    let error = &answer["error"];
    bail!(
        "{what}: {} ({}){}",
        error["message"].as_str().unwrap_or("unexpected answer"),
        error["code"].as_str().unwrap_or("?"),
        if error["details"].is_null() {
            String::new()
        } else {
            format!("\n{:#}", error["details"])
        }
    )
}

/// An access token and the refresh token that renews it.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// Sends the request and returns the envelope's `data`, or the service's error (`what` says what failed).
pub async fn call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
    let answer = request
        .send()
        .await
        .with_context(|| format!("{what}: the service cannot be reached"))?
        .json::<Value>()
        .await
        .with_context(|| format!("{what}: the answer is not JSON"))?;
    data(answer, what)
}

/// Signs in to the service at `base` (`POST /api/v1/auth/login`).
pub async fn sign_in(client: &reqwest::Client, base: &str, email: &str, password: &str) -> anyhow::Result<Tokens> {
    let pair = call(
        client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&serde_json::json!({ "email": email, "password": password })),
        "sign-in",
    )
    .await?;
    Ok(Tokens {
        access: pair["access_token"]
            .as_str()
            .context("no access token in the answer")?
            .to_owned(),
        refresh: pair["refresh_token"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Signs in, uploads the file, and (with `wait`) shows the job's progress until it ends. Fails unless the
/// job completes. Returns the job as the service last described it.
pub async fn submit(s: Submission<'_>) -> anyhow::Result<Value> {
    let base = s.url.trim_end_matches('/');
    let client = reqwest::Client::builder().build()?;
    let Tokens {
        access: mut token,
        mut refresh,
    } = sign_in(&client, base, s.email, s.password).await?;
    let bytes = tokio::fs::read(s.file)
        .await
        .with_context(|| format!("cannot read {}", s.file.display()))?;
    let file_name = s
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upload".into());
    let mut form = reqwest::multipart::Form::new()
        .text("type", s.prediction_type.as_str())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(file_name));
    if let Some(organization_id) = s.organization_id {
        form = form.text("organization_id", organization_id.to_owned());
    }
    if let Some(model) = s.model {
        form = form.text("model", model.to_owned());
    }
    let job = call(
        client
            .post(format!("{base}/api/v1/bulk-jobs"))
            .bearer_auth(&token)
            .multipart(form),
        "upload",
    )
    .await?;
    let id = job["id"].as_str().context("no job id in the answer")?.to_owned();
    println!("job {id} queued");
    if !s.wait {
        return Ok(job);
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} rows ({per_sec}, eta {eta}) {msg}",
        )?
        .progress_chars("=> "),
    );
    let job = loop {
        let response = client
            .get(format!("{base}/api/v1/bulk-jobs/{id}"))
            .bearer_auth(&token)
            .send()
            .await?;
        if response.status() == reqwest::StatusCode::UNAUTHORIZED && !refresh.is_empty() {
            // A long job outlives the access token: rotate the pair and ask again.
            let pair = call(
                client
                    .post(format!("{base}/api/v1/auth/refresh"))
                    .json(&serde_json::json!({ "refresh_token": refresh })),
                "token refresh",
            )
            .await?;
            token = pair["access_token"].as_str().unwrap_or_default().to_owned();
            refresh = pair["refresh_token"].as_str().unwrap_or_default().to_owned();
            continue;
        }
        let job = data(response.json::<Value>().await?, "progress")?;
        if let Some(total) = job["total_rows"].as_u64() {
            bar.set_length(total);
        }
        bar.set_position(job["processed_rows"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{} · {} failed",
            job["status"].as_str().unwrap_or("?"),
            job["failed_rows"].as_u64().unwrap_or(0)
        ));
        if matches!(job["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish();
    println!(
        "job {id} {}: {} rows, {} scored, {} failed",
        job["status"].as_str().unwrap_or("?"),
        job["total_rows"],
        job["succeeded_rows"],
        job["failed_rows"]
    );
    println!("results: {base}/api/v1/bulk-jobs/{id}/results");
    if job["failed_rows"].as_u64().unwrap_or(0) > 0 {
        println!("errors:  {base}/api/v1/bulk-jobs/{id}/errors");
    }
    match job["status"].as_str() {
        Some("completed") => Ok(job),
        _ => bail!(
            "the job did not complete: {}",
            job["error_message"].as_str().unwrap_or("cancelled")
        ),
    }
}

/// Writes `rows` rows of AccuNode's spreadsheet format for `prediction_type` to `out` (a fixed seed, so
/// the same arguments give the same file): companies `<prefix>0000000`, `<prefix>0000001`, … of `periods`
/// consecutive periods each.
pub fn sample(
    out: &Path,
    prediction_type: PredictionType,
    rows: u64,
    periods: u64,
    prefix: &str,
) -> anyhow::Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let ratios: &[&str] = match prediction_type {
        PredictionType::Annual => &ACCUNODE_ANNUAL,
        PredictionType::Quarterly => &ACCUNODE_QUARTERLY,
    };
    writeln!(
        out,
        "company_symbol,company_name,market_cap,sector,reporting_year,reporting_quarter,{}",
        ratios.join(",")
    )?;
    const SECTORS: [&str; 6] = [
        "Industrials",
        "Energy",
        "Technology",
        "Health Care",
        "Financials",
        "Utilities",
    ];
    let periods = periods.max(1);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*: a fixed, dependency-free sequence.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    };
    // Each company has its own profile; its periods vary a few percent around it (as real series do), so
    // risk changes between periods are the exception, not the rule.
    let mut base = Vec::new();
    for row in 0..rows {
        let company = row / periods;
        let period = row % periods;
        if period == 0 {
            base = ratios
                .iter()
                .map(|name| match *name {
                    "long_term_debt_to_total_capital" => next() * 80.0,
                    "total_debt_to_ebitda" => next() * 8.0 - 0.5,
                    "net_income_margin" | "sga_margin" => next() * 40.0 - 10.0,
                    "ebit_to_interest_expense" => next() * 30.0 - 2.0,
                    _ => next() * 30.0 - 8.0,
                })
                .collect();
        }
        let (year, quarter) = match prediction_type {
            PredictionType::Annual => (1990 + period, 4),
            PredictionType::Quarterly => (1990 + period / 4, period % 4 + 1),
        };
        write!(
            out,
            "{prefix}{company:07},Sample Company {prefix}{company},{:.0},{},{year},Q{quarter}",
            1e6 + next() * 1e9,
            SECTORS[(company % 6) as usize]
        )?;
        for value in &base {
            if next() < 0.02 {
                write!(out, ",NM")?;
            } else {
                write!(out, ",{:.2}", value * (0.97 + 0.06 * next()))?;
            }
        }
        writeln!(out)?;
    }
    out.flush()?;
    Ok(())
}
