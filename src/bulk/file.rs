//! Reading uploaded spreadsheets: format detection, the header checked against the columns a prediction
//! type accepts, and the rows read one at a time (CSV from the file, never buffered whole; XLSX cell by cell
//! on a thread of its own, after its decompressed size was checked).
//!
//! Columns (matched case-insensitively): AccuNode's, unchanged — `company_symbol`, `company_name`,
//! `market_cap`, `sector`, `reporting_year`, `reporting_quarter` and the ratio columns of the type, in
//! percent units — and the statement's line items (`total_assets`, `ebit`, …, in thousands). Blank cells,
//! `NM`, `N/A` are missing values. Row numbers count data records from 1 (the first after the header);
//! blank rows are skipped (a blank CSV line is no record; an empty XLSX row keeps its number, as the
//! spreadsheet shows it).

use std::{
    fs::File,
    io::{BufReader, Read},
    path::Path,
    sync::mpsc,
};

use calamine::{DataRef, Reader, Xlsx};
use pdscore_actors::{
    FilingContent, PredictionType, Rejected,
    bulk_job::{BulkRow, CompanyRow, RowFiling, RowSource, SourceError},
    text::control_character,
};
use pdscore_models::{
    features::{ACCUNODE_ANNUAL, ACCUNODE_QUARTERLY, parse_text},
    statement::Statement,
};
use serde_json::{Map, Value};

use crate::domain::CompanyFields;

/// The formats accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Xlsx,
}

impl FileFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }

    /// From the file's first bytes (an XLSX is a ZIP archive) and, failing that, its name.
    pub fn detect(file_name: &str, head: &[u8]) -> Result<Self, FileError> {
        let lower = file_name.to_ascii_lowercase();
        if head.starts_with(b"PK\x03\x04") {
            return Ok(Self::Xlsx);
        }
        if head.is_empty() {
            return Err(FileError::new("EMPTY_FILE", "The file is empty."));
        }
        if lower.ends_with(".xls") || head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            return Err(FileError::new(
                "UNSUPPORTED_FORMAT",
                "Legacy .xls workbooks are not supported; save the sheet as .xlsx or .csv.",
            ));
        }
        if lower.ends_with(".xlsx") {
            return Err(FileError::new(
                "NOT_A_SPREADSHEET",
                "The file is named .xlsx but is not an XLSX workbook.",
            ));
        }
        // Text has no NUL bytes (UTF-16 files and binaries do).
        if head.contains(&0) {
            return Err(FileError::new(
                "NOT_A_SPREADSHEET",
                "The file is neither CSV text (UTF-8) nor an XLSX workbook.",
            ));
        }
        Ok(Self::Csv)
    }
}

/// Why a file is refused as a whole. `code` is stable (in the error's `details.reason`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct FileError {
    pub code: &'static str,
    pub message: String,
    /// For column errors: the columns this prediction type accepts.
    pub expected: Vec<String>,
    /// For column errors: the columns at fault.
    pub columns: Vec<String>,
}

impl FileError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            expected: Vec::new(),
            columns: Vec::new(),
        }
    }

    /// The file is too big to take: 413 rather than 422.
    pub fn is_too_large(&self) -> bool {
        matches!(self.code, "FILE_TOO_LARGE" | "XLSX_TOO_LARGE")
    }
}

/// Limits on what an XLSX may expand to.
#[derive(Debug, Clone, Copy)]
pub struct XlsxLimits {
    /// Sum of the archive's uncompressed entries.
    pub max_uncompressed_bytes: u64,
    /// Uncompressed / compressed, per entry (zip bombs compress far beyond spreadsheets' ~10–20×).
    pub max_ratio: u64,
}

/// One column's meaning.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Column {
    Symbol,
    Name,
    MarketCap,
    Sector,
    Year,
    Quarter,
    Ratio(&'static str),
    Item(&'static str),
}

const COMPANY_COLUMNS: [&str; 4] = ["company_symbol", "company_name", "market_cap", "sector"];

fn ratio_columns(prediction_type: PredictionType) -> &'static [&'static str] {
    match prediction_type {
        PredictionType::Annual => &ACCUNODE_ANNUAL,
        PredictionType::Quarterly => &ACCUNODE_QUARTERLY,
    }
}

/// The columns a file of this type may have, AccuNode's first, in its order.
pub fn expected_columns(prediction_type: PredictionType) -> Vec<String> {
    COMPANY_COLUMNS
        .iter()
        .chain(&["reporting_year", "reporting_quarter"])
        .chain(ratio_columns(prediction_type))
        .chain(Statement::FIELDS)
        .map(|c| (*c).to_owned())
        .collect()
}

/// What each column of a file means, checked once from its header.
#[derive(Debug, Clone)]
pub struct Layout {
    prediction_type: PredictionType,
    columns: Vec<Column>,
    names: Vec<String>,
}

impl Layout {
    pub fn from_header(header: &[String], prediction_type: PredictionType) -> Result<Self, FileError> {
        let ratios = ratio_columns(prediction_type);
        let mut columns = Vec::with_capacity(header.len());
        let mut names = Vec::with_capacity(header.len());
        let mut unknown = Vec::new();
        let mut repeated = Vec::new();
        for raw in header {
            let name = raw.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            let column = match name.as_str() {
                "company_symbol" => Some(Column::Symbol),
                "company_name" => Some(Column::Name),
                "market_cap" => Some(Column::MarketCap),
                "sector" => Some(Column::Sector),
                "reporting_year" => Some(Column::Year),
                "reporting_quarter" => Some(Column::Quarter),
                other => ratios
                    .iter()
                    .find(|r| **r == other)
                    .map(|r| Column::Ratio(r))
                    .or_else(|| Statement::FIELDS.iter().find(|f| **f == other).map(|f| Column::Item(f))),
            };
            match column {
                Some(column) if columns.contains(&column) => repeated.push(raw.clone()),
                Some(column) => {
                    columns.push(column);
                    names.push(name);
                }
                None => unknown.push(raw.clone()),
            }
        }
        let column_error = |code, message: String, columns: Vec<String>| FileError {
            code,
            message,
            expected: expected_columns(prediction_type),
            columns,
        };
        if header.iter().all(|h| h.trim().is_empty()) {
            return Err(FileError::new("EMPTY_FILE", "The file has no header row."));
        }
        if !repeated.is_empty() {
            return Err(column_error(
                "DUPLICATE_COLUMNS",
                format!("Columns appear twice: {}.", repeated.join(", ")),
                repeated,
            ));
        }
        if !unknown.is_empty() {
            let other = match prediction_type {
                PredictionType::Annual => PredictionType::Quarterly,
                PredictionType::Quarterly => PredictionType::Annual,
            };
            let hint = if unknown
                .iter()
                .all(|c| ratio_columns(other).contains(&c.trim().to_ascii_lowercase().as_str()))
            {
                format!(" They are {other} ratios: is this a {other} file?")
            } else {
                String::new()
            };
            return Err(column_error(
                "UNKNOWN_COLUMNS",
                format!(
                    "Unknown columns: {}.{hint} See `expected` for the accepted columns.",
                    unknown.join(", ")
                ),
                unknown,
            ));
        }
        let mut required = vec![Column::Symbol, Column::Name, Column::Year];
        if prediction_type == PredictionType::Quarterly {
            required.push(Column::Quarter);
        }
        let missing: Vec<String> = required
            .iter()
            .filter(|c| !columns.contains(c))
            .map(|c| column_name(*c).to_owned())
            .collect();
        if !missing.is_empty() {
            return Err(column_error(
                "MISSING_COLUMNS",
                format!("Missing columns: {}.", missing.join(", ")),
                missing,
            ));
        }
        if !columns.iter().any(|c| matches!(c, Column::Ratio(_) | Column::Item(_))) {
            let wanted: Vec<String> = ratios.iter().map(|r| (*r).to_owned()).collect();
            return Err(column_error(
                "MISSING_COLUMNS",
                format!(
                    "No column to score: add the {prediction_type} ratio columns ({}) or statement line items.",
                    wanted.join(", ")
                ),
                wanted,
            ));
        }
        Ok(Self {
            prediction_type,
            columns,
            names,
        })
    }

    /// Reads one data row: its filing, or why it is not one. A cell holding a control character fails its row
    /// (the row's copy kept for the errors file shows each as U+FFFD, so that it can be stored and read).
    pub fn row(&self, row: i64, cells: &[String]) -> BulkRow {
        let mut raw = Map::new();
        let mut control = None;
        for (name, cell) in self.names.iter().zip(cells) {
            let shown = if control_character(cell).is_some() {
                control.get_or_insert(name.as_str());
                cell.chars()
                    .map(|c| if c.is_control() { '\u{fffd}' } else { c })
                    .collect()
            } else {
                cell.clone()
            };
            raw.insert(name.clone(), Value::String(shown));
        }
        let filing = if let Some(column) = control {
            Err(Rejected {
                code: pdscore_actors::RejectCode::ControlCharacter,
                message: "the cell holds a control character (U+0000-U+001F, U+007F-U+009F)".into(),
                field: Some(column.to_owned()),
            })
        } else if cells.len() > self.columns.len() && cells[self.columns.len()..].iter().any(|c| !c.trim().is_empty()) {
            Err(Rejected::validation(
                "row",
                format!(
                    "the row has {} cells; the header has {} columns",
                    cells.len(),
                    self.columns.len()
                ),
            ))
        } else {
            self.filing(cells)
        };
        BulkRow {
            row,
            filing,
            raw: Value::Object(raw),
        }
    }

    fn filing(&self, cells: &[String]) -> Result<RowFiling, Rejected> {
        let cell = |column: Column| -> Option<&str> {
            let i = self.columns.iter().position(|c| *c == column)?;
            cells.get(i).map(|c| c.trim()).filter(|c| !c.is_empty())
        };
        let number = |field: &str, text: &str| -> Result<Option<f64>, Rejected> {
            parse_text(text).ok_or_else(|| Rejected::validation(field, format!("{text:?} is not a number")))
        };
        let market_cap = cell(Column::MarketCap)
            .map(|m| number("market_cap", m))
            .transpose()?
            .flatten();
        let company = CompanyFields::parse(
            cell(Column::Symbol).unwrap_or_default(),
            ("company_name", cell(Column::Name).unwrap_or_default()),
            cell(Column::Sector),
            market_cap,
        )
        .map_err(|e| Rejected::validation("company", e.to_string()))?;

        let mut ratios = Map::new();
        let mut statement = Map::new();
        for (column, text) in self.columns.iter().zip(cells) {
            match column {
                Column::Ratio(name) => {
                    ratios.insert((*name).to_owned(), Value::String(text.trim().to_owned()));
                }
                Column::Item(name) => {
                    if let Some(value) = number(name, text.trim())? {
                        statement.insert((*name).to_owned(), Value::from(value));
                    }
                }
                _ => {}
            }
        }
        // A row whose every scoring cell is blank has nothing to score.
        let any_ratio = ratios.values().any(|v| v.as_str().is_some_and(|t| !t.is_empty()));
        let year = cell(Column::Year).unwrap_or_default();
        let content = FilingContent::parse(
            self.prediction_type,
            &Value::String(year.to_owned()),
            cell(Column::Quarter).map(|q| Value::String(q.to_owned())).as_ref(),
            (!statement.is_empty()).then_some(Value::Object(statement)),
            any_ratio.then_some(ratios),
            None,
        )?;
        Ok(RowFiling {
            company: CompanyRow {
                symbol: company.symbol.as_str().to_owned(),
                name: company.name,
                sector: company.sector,
                market_cap: company.market_cap,
            },
            content,
        })
    }
}

fn column_name(column: Column) -> &'static str {
    match column {
        Column::Symbol => "company_symbol",
        Column::Name => "company_name",
        Column::MarketCap => "market_cap",
        Column::Sector => "sector",
        Column::Year => "reporting_year",
        Column::Quarter => "reporting_quarter",
        Column::Ratio(name) | Column::Item(name) => name,
    }
}

/// A record as read: its cells, or why it cannot be read (bad encoding).
type Record = Result<Vec<String>, String>;

/// Records of a file, header first.
type Records = Box<dyn Iterator<Item = Result<Record, SourceError>> + Send>;

fn csv_records(path: &Path) -> Result<Records, FileError> {
    let file = File::open(path).map_err(|e| FileError::new("UNREADABLE_FILE", format!("cannot open the file: {e}")))?;
    let reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(64 * 1024, file));
    let records = reader.into_byte_records().map(|record| {
        let record = record.map_err(|e| SourceError(format!("CSV: {e}")))?;
        Ok(record
            .iter()
            .map(|field| std::str::from_utf8(field).map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the row is not UTF-8 text".to_owned()))
    });
    Ok(Box::new(records))
}

/// Refuses archives that would expand beyond the limits, before anything is decompressed.
fn check_xlsx(path: &Path, limits: XlsxLimits) -> Result<(), FileError> {
    let file = File::open(path).map_err(|e| FileError::new("UNREADABLE_FILE", format!("cannot open the file: {e}")))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        FileError::new(
            "NOT_A_SPREADSHEET",
            format!("The file is not a readable XLSX workbook: {e}."),
        )
    })?;
    let mut total: u64 = 0;
    // The XLSX reader reserves room for as many shared strings as the table says it holds, before reading
    // one: the part's path may be anything the workbook's relationships name, so every part with that file
    // name is checked, once the sizes are.
    let mut shared_strings = Vec::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| FileError::new("NOT_A_SPREADSHEET", format!("The workbook is damaged: {e}.")))?;
        total = total.saturating_add(entry.size());
        if entry
            .name()
            .is_ok_and(|n| n.to_ascii_lowercase().ends_with("sharedstrings.xml"))
        {
            shared_strings.push(i);
        }
        if entry.size() > 1024 * 1024 && entry.size() / entry.compressed_size().max(1) > limits.max_ratio {
            return Err(FileError::new(
                "XLSX_TOO_LARGE",
                format!(
                    "{} expands {}× (at most {}× is accepted): this does not look like a spreadsheet.",
                    entry.name().unwrap_or_default(),
                    entry.size() / entry.compressed_size().max(1),
                    limits.max_ratio
                ),
            ));
        }
    }
    if total > limits.max_uncompressed_bytes {
        return Err(FileError::new(
            "XLSX_TOO_LARGE",
            format!(
                "The workbook expands to {total} bytes; at most {} are accepted. Split it, or upload it as CSV.",
                limits.max_uncompressed_bytes
            ),
        ));
    }
    for i in shared_strings {
        let entry = archive
            .by_index(i)
            .map_err(|e| FileError::new("NOT_A_SPREADSHEET", format!("The workbook is damaged: {e}.")))?;
        let (name, size) = (entry.name().map(|n| n.into_owned()).unwrap_or_default(), entry.size());
        check_shared_strings(BufReader::new(entry), size, &name)?;
    }
    Ok(())
}

/// The smallest shared string an XLSX can hold (`<si/>`).
const MIN_SHARED_STRING_BYTES: u64 = 5;

/// Refuses a shared-strings part whose `uniqueCount` declares more strings than its `size` bytes can hold. The
/// part is read as calamine reads it (end names and comments not checked, empty elements expanded), so that
/// this check finds the `sst` element calamine would find; XML that fails before it is refused here.
fn check_shared_strings(part: impl std::io::BufRead, size: u64, name: &str) -> Result<(), FileError> {
    use quick_xml::events::Event;
    let mut xml = quick_xml::Reader::from_reader(part);
    let config = xml.config_mut();
    config.check_end_names = false;
    config.check_comments = false;
    config.expand_empty_elements = true;
    config.trim_text(false);
    let mut buffer = Vec::with_capacity(1024);
    loop {
        buffer.clear();
        let element = match xml.read_event_into(&mut buffer) {
            Ok(Event::Start(e) | Event::Empty(e)) => e,
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => continue,
            Err(e) => {
                return Err(FileError::new(
                    "NOT_A_SPREADSHEET",
                    format!("{name} is not readable XML: {e}."),
                ));
            }
        };
        // The reader takes the first `sst` element wherever it is.
        if element.local_name().as_ref() != "sst" {
            continue;
        }
        for attribute in element.attributes().flatten() {
            if attribute.key.as_ref() != "uniqueCount" {
                continue;
            }
            let digits = attribute.value.as_bytes();
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                // Not a count the reader would act on.
                return Ok(());
            }
            let significant = &digits[digits.iter().take_while(|d| **d == b'0').count()..];
            let declared = std::str::from_utf8(significant)
                .ok()
                .filter(|d| d.len() <= 19)
                .and_then(|d| if d.is_empty() { Some(0) } else { d.parse::<u64>().ok() });
            let room = size / MIN_SHARED_STRING_BYTES;
            if declared.is_none_or(|n| n > room) {
                let shown: String = String::from_utf8_lossy(digits).chars().take(40).collect();
                return Err(FileError::new(
                    "NOT_A_SPREADSHEET",
                    format!(
                        "{name} declares {shown} shared strings in {size} bytes (at most {room} fit): the workbook is damaged."
                    ),
                ));
            }
        }
        return Ok(());
    }
}

/// Rows of the first sheet, read cell by cell on a thread of its own and handed over a bounded channel.
fn xlsx_records(path: &Path, limits: XlsxLimits) -> Result<Records, FileError> {
    check_xlsx(path, limits)?;
    // A reader that panics on a malformed part refuses the file, not the request.
    let opened = std::panic::catch_unwind(|| calamine::open_workbook::<Xlsx<_>, _>(path)).map_err(|_| {
        FileError::new(
            "NOT_A_SPREADSHEET",
            "The workbook is damaged: its parts cannot be read.",
        )
    })?;
    let mut workbook = opened.map_err(|e| {
        FileError::new(
            "NOT_A_SPREADSHEET",
            format!("The file is not a readable XLSX workbook: {e}."),
        )
    })?;
    let sheet = workbook
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| FileError::new("EMPTY_FILE", "The workbook has no sheet."))?;
    let (send, receive) = mpsc::sync_channel::<Result<Record, SourceError>>(256);
    std::thread::Builder::new()
        .name("xlsx-reader".into())
        .spawn(move || {
            let failed = send.clone();
            let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                send_rows(&mut workbook, &sheet, &send)
            }));
            if read.is_err() {
                // The rows sent stand; the file ends in an error, not silently.
                let _ = failed.send(Err(SourceError(
                    "XLSX: the sheet is damaged and cannot be read further".into(),
                )));
            }
        })
        .map_err(|e| FileError::new("UNREADABLE_FILE", format!("cannot start the reader: {e}")))?;
    Ok(Box::new(receive.into_iter()))
}

/// Reads the sheet's cells in order and sends its rows (until the receiver is gone).
fn send_rows(workbook: &mut Xlsx<BufReader<File>>, sheet: &str, send: &mpsc::SyncSender<Result<Record, SourceError>>) {
    let mut cells = match workbook.worksheet_cells_reader(sheet) {
        Ok(cells) => cells,
        Err(e) => {
            let _ = send.send(Err(SourceError(format!("XLSX: {e}"))));
            return;
        }
    };
    let mut current: Option<(u32, Vec<String>)> = None;
    loop {
        let next = match cells.next_cell() {
            Ok(next) => next,
            Err(e) => {
                let _ = send.send(Err(SourceError(format!("XLSX: {e}"))));
                return;
            }
        };
        let Some(cell) = next else { break };
        let (row, column) = cell.get_position();
        if current.as_ref().is_some_and(|(r, _)| *r != row) {
            let (done_row, done) = current.take().unwrap_or_default();
            // Rows the sheet skips (entirely empty) are sent as empty, to keep the numbering.
            let gap = row.saturating_sub(done_row).saturating_sub(1);
            if send.send(Ok(Ok(done))).is_err() {
                return;
            }
            for _ in 0..gap.min(1_048_576) {
                if send.send(Ok(Ok(Vec::new()))).is_err() {
                    return;
                }
            }
        }
        let (_, values) = current.get_or_insert_with(|| (row, Vec::new()));
        let column = column as usize;
        if column >= 16_384 {
            continue;
        }
        if values.len() <= column {
            values.resize(column + 1, String::new());
        }
        values[column] = cell_text(cell.get_value());
    }
    if let Some((_, done)) = current {
        let _ = send.send(Ok(Ok(done)));
    }
}

fn cell_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::Int(i) => i.to_string(),
        // Whole numbers as integers (a year typed as a number is 2024, not 2024.0).
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_owned(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => d.as_f64().to_string(),
        DataRef::Error(e) => format!("#{e:?}"),
        DataRef::Empty => String::new(),
    }
}

fn records(path: &Path, format: FileFormat, limits: XlsxLimits) -> Result<Records, FileError> {
    match format {
        FileFormat::Csv => csv_records(path),
        FileFormat::Xlsx => xlsx_records(path, limits),
    }
}

/// A file's rows for a bulk job.
pub struct FileRows {
    records: Records,
    layout: Layout,
    /// The number of the last row read.
    row: i64,
}

impl FileRows {
    /// Opens a file and checks its header.
    pub fn open(
        path: &Path,
        format: FileFormat,
        prediction_type: PredictionType,
        limits: XlsxLimits,
    ) -> Result<Self, FileError> {
        let mut records = records(path, format, limits)?;
        let header = loop {
            match records.next() {
                None => return Err(FileError::new("EMPTY_FILE", "The file has no rows.")),
                Some(Err(e)) => return Err(FileError::new("NOT_A_SPREADSHEET", e.0)),
                Some(Ok(Err(reason))) => {
                    return Err(FileError::new("NOT_A_SPREADSHEET", format!("The header: {reason}.")));
                }
                Some(Ok(Ok(cells))) if cells.iter().all(|c| c.trim().is_empty()) => continue,
                Some(Ok(Ok(cells))) => break cells,
            }
        };
        Ok(Self {
            records,
            layout: Layout::from_header(&header, prediction_type)?,
            row: 0,
        })
    }

    /// Counts the data rows that are not blank (reads the whole file).
    pub fn count(mut self) -> Result<u64, SourceError> {
        let mut count = 0;
        for record in self.records.by_ref() {
            match record? {
                Ok(cells) if cells.iter().all(|c| c.trim().is_empty()) => {}
                _ => count += 1,
            }
        }
        Ok(count)
    }
}

impl RowSource for FileRows {
    fn next_rows(&mut self, max: usize) -> Result<Vec<BulkRow>, SourceError> {
        let mut rows = Vec::with_capacity(max.min(4096));
        while rows.len() < max {
            let Some(record) = self.records.next() else { break };
            self.row += 1;
            match record? {
                Ok(cells) if cells.iter().all(|c| c.trim().is_empty()) => {}
                Ok(cells) => rows.push(self.layout.row(self.row, &cells)),
                Err(reason) => rows.push(BulkRow {
                    row: self.row,
                    filing: Err(Rejected::validation("row", reason)),
                    raw: Value::Null,
                }),
            }
        }
        Ok(rows)
    }
}

/// Reads up to `n` bytes from the start of a file (format detection).
pub fn head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(n);
    File::open(path)?.take(n as u64).read_to_end(&mut buffer)?;
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(columns: &str) -> Vec<String> {
        columns.split(',').map(str::to_owned).collect()
    }

    const ANNUAL: &str = "company_symbol,company_name,market_cap,sector,reporting_year,reporting_quarter,\
        long_term_debt_to_total_capital,total_debt_to_ebitda,net_income_margin,ebit_to_interest_expense,return_on_assets";

    #[test]
    fn accunode_annual_columns_are_accepted_unchanged() {
        let layout = Layout::from_header(&header(ANNUAL), PredictionType::Annual).unwrap();
        let row = layout.row(
            1,
            &header("acme,Acme Corp,1500000,Industrials,2023,Q4,35.2,2.1,NM,,6.5"),
        );
        let filing = row.filing.unwrap();
        assert_eq!(filing.company.symbol, "ACME");
        assert_eq!(filing.content.period.year, 2023);
        assert_eq!(
            filing.content.period.quarter, None,
            "the quarter of an annual row is informational"
        );
        assert_eq!(filing.content.ratios.unwrap()["net_income_margin"], "NM");
        assert_eq!(row.raw["company_name"], "Acme Corp");
    }

    #[test]
    fn missing_and_unknown_columns_list_the_expected_ones() {
        let missing =
            Layout::from_header(&header("company_symbol,total_debt_to_ebitda"), PredictionType::Annual).unwrap_err();
        assert_eq!(missing.code, "MISSING_COLUMNS");
        assert_eq!(missing.columns, ["company_name", "reporting_year"]);
        assert!(missing.expected.contains(&"return_on_assets".to_owned()));

        let quarterly_file =
            "company_symbol,company_name,reporting_year,reporting_quarter,sga_margin,return_on_capital";
        let wrong_type = Layout::from_header(&header(quarterly_file), PredictionType::Annual).unwrap_err();
        assert_eq!(wrong_type.code, "UNKNOWN_COLUMNS");
        assert!(wrong_type.message.contains("quarterly file"), "{}", wrong_type.message);

        let nothing = Layout::from_header(
            &header("company_symbol,company_name,reporting_year"),
            PredictionType::Annual,
        )
        .unwrap_err();
        assert_eq!(nothing.code, "MISSING_COLUMNS");
    }

    #[test]
    fn a_malformed_row_fails_alone_with_its_reason() {
        let layout = Layout::from_header(&header(ANNUAL), PredictionType::Annual).unwrap();
        let bad_year = layout
            .row(7, &header("ACME,Acme,,,20x3,,1,2,3,4,5"))
            .filing
            .unwrap_err();
        assert_eq!(bad_year.field.as_deref(), Some("reporting_year"));
        let bad_cap = layout
            .row(8, &header("ACME,Acme,lots,,2023,,1,2,3,4,5"))
            .filing
            .unwrap_err();
        assert_eq!(bad_cap.field.as_deref(), Some("market_cap"));
        let no_symbol = layout.row(9, &header(",Acme,,,2023,,1,2,3,4,5")).filing.unwrap_err();
        assert_eq!(no_symbol.field.as_deref(), Some("company"));
        let too_many = layout
            .row(10, &header("ACME,Acme,,,2023,,1,2,3,4,5,6"))
            .filing
            .unwrap_err();
        assert_eq!(too_many.field.as_deref(), Some("row"));
    }

    #[test]
    fn statement_columns_are_read_as_line_items() {
        let layout = Layout::from_header(
            &header("company_symbol,company_name,reporting_year,reporting_quarter,total_assets,ebit,net_profit"),
            PredictionType::Quarterly,
        )
        .unwrap();
        let filing = layout.row(1, &header("X,X Co,2024,Q2,1000,N/A,12.5")).filing.unwrap();
        let statement = filing.content.statement.unwrap();
        assert_eq!(statement.total_assets, Some(1000.0));
        assert_eq!(statement.ebit, None);
        assert_eq!(filing.content.period.quarter, Some(2));
    }

    /// A one-sheet workbook whose shared strings are `shared_strings` (the sheet's A1 is string 0), written to
    /// a file of its own.
    fn workbook(shared_strings: &str) -> std::path::PathBuf {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("pdscore-test-{}.xlsx", uuid::Uuid::new_v4()));
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        let parts = [
            (
                "[Content_Types].xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>"#,
            ),
            (
                "_rels/.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#,
            ),
            (
                "xl/workbook.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"#,
            ),
            (
                "xl/_rels/workbook.xml.rels",
                r#"<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>"#,
            ),
            (
                "xl/worksheets/sheet1.xml",
                r#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row></sheetData></worksheet>"#,
            ),
            ("xl/sharedStrings.xml", shared_strings),
        ];
        for (name, text) in parts {
            zip.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    const LIMITS: XlsxLimits = XlsxLimits {
        max_uncompressed_bytes: 1 << 20,
        max_ratio: 100,
    };

    #[test]
    fn a_shared_string_count_beyond_the_part_is_refused_before_the_reader_reserves_it() {
        let sst = |attributes: &str| {
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" {attributes}><si><t>company_symbol</t></si></sst>"#
            )
        };
        // A real workbook's count opens as before.
        let fine = workbook(&sst(r#"count="1" uniqueCount="1""#));
        let opened = FileRows::open(&fine, FileFormat::Xlsx, PredictionType::Annual, LIMITS);
        assert_eq!(
            opened.err().map(|e| e.code),
            Some("MISSING_COLUMNS"),
            "the header was read"
        );
        // The reproduced file: 240,000,000,000,000,000 bytes reserved, the process aborted.
        for declared in [
            r#"count="1" uniqueCount="10000000000000000""#,
            r#"uniqueCount="00000000000000000000000000099999999999999999999""#,
            r#"uniqueCount="1000""#,
        ] {
            let hostile = workbook(&sst(declared));
            let refused = FileRows::open(&hostile, FileFormat::Xlsx, PredictionType::Annual, LIMITS)
                .err()
                .expect("refused");
            assert_eq!(refused.code, "NOT_A_SPREADSHEET", "{declared}: {}", refused.message);
            assert!(refused.message.contains("shared strings"), "{}", refused.message);
            let _ = std::fs::remove_file(hostile);
        }
        // Behind XML that a strict parser stops at, but the reader goes past.
        let sneaky = workbook(
            r#"<?xml version="1.0"?><a></b><!-- -- --><sst uniqueCount="10000000000000000"><si><t>x</t></si></sst>"#,
        );
        let refused = FileRows::open(&sneaky, FileFormat::Xlsx, PredictionType::Annual, LIMITS)
            .err()
            .expect("refused");
        assert_eq!(refused.code, "NOT_A_SPREADSHEET", "{}", refused.message);
        let _ = std::fs::remove_file(sneaky);
        let _ = std::fs::remove_file(fine);
    }

    #[test]
    fn a_cell_with_a_control_character_fails_its_row_and_is_kept_printable() {
        let layout = Layout::from_header(&header(ANNUAL), PredictionType::Annual).unwrap();
        let row = layout.row(301, &header("ACME,Acme\u{0}Corp,,,2023,,1,2,3,4,5"));
        let refused = row.filing.unwrap_err();
        assert_eq!(
            (refused.code, refused.field.as_deref()),
            (pdscore_actors::RejectCode::ControlCharacter, Some("company_name"))
        );
        assert_eq!(row.raw["company_name"], "Acme\u{fffd}Corp");
    }

    #[test]
    fn formats_are_told_by_content() {
        assert_eq!(
            FileFormat::detect("a.csv", b"PK\x03\x04rest").unwrap(),
            FileFormat::Xlsx
        );
        assert_eq!(
            FileFormat::detect("a.txt", b"company_symbol,").unwrap(),
            FileFormat::Csv
        );
        assert_eq!(FileFormat::detect("a.csv", b"").unwrap_err().code, "EMPTY_FILE");
        assert_eq!(
            FileFormat::detect("a.csv", b"\x00\x01\x02").unwrap_err().code,
            "NOT_A_SPREADSHEET"
        );
        assert_eq!(
            FileFormat::detect("a.xlsx", b"hello").unwrap_err().code,
            "NOT_A_SPREADSHEET"
        );
    }
}
