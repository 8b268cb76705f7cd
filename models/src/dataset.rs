//! The Polish bankruptcy data in ARFF form (`../shared/data/polish_bankruptcy/`): 64 numeric attributes,
//! `?` for missing, and the class (1 = bankrupt) last.

use std::path::Path;

use crate::statement::Statement;

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

/// The line items behind one row of Polish attributes: the statement a client would send for that firm.
///
/// The attributes are ratios, so the scale comes from `Attr29` (log10 of total assets, in thousands; 1,000
/// when it is missing) and each item is solved from the attributes that define it, by the definitions the
/// data follows (`features::POLISH_DEPARTURES`). "Sales" is the one the ratios use (`Attr63 * Attr51`,
/// which agrees with `Attr1 / Attr23`, `Attr18 / Attr19` and `Attr22 / Attr42` in 99.8 % of rows), not
/// `Attr9`. An item whose attributes are missing is absent (where `Attr27` is missing, so are the financial
/// expenses: the row does not say whether the firm pays any).
pub fn polish_statement(row: &[Option<f64>]) -> Statement {
    let a = |i: usize| row.get(i - 1).copied().flatten();
    let mul = |x: Option<f64>, y: Option<f64>| Some(x? * y?).filter(|v| v.is_finite());
    let quot = |x: Option<f64>, y: Option<f64>| Some(x? / y?).filter(|v| v.is_finite() && y != Some(0.0));
    let diff = |x: Option<f64>, y: Option<f64>| Some(x? - y?);
    let k = Some(a(29).map_or(1000.0, |l| 10f64.powf(l))).filter(|k| k.is_finite() && *k > 0.0);
    let per_ta = |x: Option<f64>| mul(x, k);
    let sales = per_ta(mul(a(63), a(51)).or(a(9)));
    let pbt = per_ta(a(18));
    let poa = per_ta(a(22));
    let stl = per_ta(a(51));
    let equity = per_ta(a(10));
    let financial_expenses = quot(poa, a(27));
    let inventories = quot(sales, a(60)).or_else(|| (a(20) == Some(0.0)).then_some(0.0));
    let receivables = quot(sales, a(61)).or_else(|| (a(44) == Some(0.0)).then_some(0.0));
    Statement {
        total_assets: k,
        current_assets: per_ta(a(3).zip(a(51)).map(|(w, s)| w + s)),
        cash: mul(a(40), stl),
        receivables,
        inventories,
        fixed_assets: quot(equity, a(53)),
        total_liabilities: per_ta(a(2)),
        current_liabilities: stl,
        long_term_liabilities: per_ta(diff(a(38), a(10))),
        equity,
        share_capital: per_ta(diff(a(10), a(25))),
        retained_earnings: per_ta(a(6)),
        sales,
        previous_sales: quot(sales, a(21)),
        cost_of_products_sold: quot(stl, a(52)),
        profit_before_tax: pbt,
        gross_profit_3y: per_ta(a(24)),
        profit_on_sales: per_ta(a(35)),
        operating_expenses: mul(a(33), stl),
        total_costs: mul(a(58), sales),
        depreciation: per_ta(diff(mul(a(16), a(2)), a(18))),
        profit_on_operating_activities: poa,
        financial_expenses,
        extraordinary_items: diff(diff(per_ta(a(11)), pbt), financial_expenses),
        net_profit: per_ta(a(1)),
        ..Statement::default()
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
