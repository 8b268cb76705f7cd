//! The Polish bankruptcy data in ARFF form (`../shared/data/polish_bankruptcy/`): 64 numeric attributes,
//! `?` for missing, and the class (1 = bankrupt) last.

use std::path::Path;

/// Rows of attributes (`None` = missing) and their labels.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub rows: Vec<Vec<Option<f64>>>,
    pub labels: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
}

impl Dataset {
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses ARFF text whose data rows are numeric attributes followed by a 0/1 class.
    pub fn parse(text: &str) -> Result<Self, DatasetError> {
        let mut dataset = Self::default();
        let mut in_data = false;
        let mut width = None;
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('%') {
                continue;
            }
            if !in_data {
                in_data = line.eq_ignore_ascii_case("@data");
                continue;
            }
            let error = |message: String| DatasetError::Parse {
                line: index + 1,
                message,
            };
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            let expected = *width.get_or_insert(cells.len());
            if cells.len() != expected || expected < 2 {
                return Err(error(format!("{} values, expected {expected}", cells.len())));
            }
            let (class, attributes) = cells.split_last().expect("at least two cells");
            let label = match *class {
                "0" => 0,
                "1" => 1,
                other => return Err(error(format!("class {other:?} is not 0 or 1"))),
            };
            let row = attributes
                .iter()
                .map(|cell| match *cell {
                    "?" => Ok(None),
                    value => value
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .map(Some)
                        .ok_or_else(|| error(format!("{value:?} is not a number"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            dataset.rows.push(row);
            dataset.labels.push(label);
        }
        Ok(dataset)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            rows: indices.iter().map(|&i| self.rows[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&l| l == 1).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arff_rows_parse_with_missing_values() {
        let text = "@relation x\n@attribute Attr1 numeric\n@attribute Attr2 numeric\n@attribute class {0,1}\n@data\r\n0.5,?,0\r\n-1e2,3,1\r\n";
        let d = Dataset::parse(text).unwrap();
        assert_eq!(d.rows, vec![vec![Some(0.5), None], vec![Some(-100.0), Some(3.0)]]);
        assert_eq!(d.labels, vec![0, 1]);
        assert_eq!(d.positives(), 1);
    }

    #[test]
    fn malformed_rows_name_their_line() {
        let err = Dataset::parse("@data\n1,2,0\n1,0\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: 2 values, expected 3");
        let err = Dataset::parse("@data\n1,x,0\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2:"));
        let err = Dataset::parse("@data\n1,2,2\n").unwrap_err();
        assert!(err.to_string().contains("class"));
    }
}
