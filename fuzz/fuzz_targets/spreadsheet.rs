//! The bulk upload's reader as the upload check and the job run it: format detection, the XLSX archive's
//! checks, the header, then every row. Any file is read or refused with a code, never a panic or an abort
//! (an allocation the file's declared sizes ask for is an abort: libFuzzer reports it past `-rss_limit_mb`).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use pdscore::bulk::file::{FileFormat, FileRows, XlsxLimits, head};
use pdscore_actors::{PredictionType, bulk_job::RowSource};

const LIMITS: XlsxLimits = XlsxLimits {
    max_uncompressed_bytes: 8 << 20,
    max_ratio: 100,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let (name, prediction_type) = match selector % 4 {
        0 => ("upload.csv", PredictionType::Annual),
        1 => ("upload.csv", PredictionType::Quarterly),
        2 => ("upload.xlsx", PredictionType::Annual),
        _ => ("upload", PredictionType::Quarterly),
    };
    let path = std::env::temp_dir().join(format!("pdscore-fuzz-{}.upload", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(file))
        .expect("the fuzz file is written");
    let format = head(&path, 8192)
        .ok()
        .and_then(|head| FileFormat::detect(name, &head).ok());
    if let Some(format) = format
        && let Ok(mut rows) = FileRows::open(&path, format, prediction_type, LIMITS)
    {
        while let Ok(batch) = rows.next_rows(64) {
            if batch.is_empty() {
                break;
            }
            for row in batch {
                if let Err(refused) = row.filing {
                    assert!(!refused.message.is_empty(), "{:?} refused without a reason", refused.code);
                }
            }
        }
    }
});
